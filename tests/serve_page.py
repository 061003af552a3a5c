"""The web page in a real browser (Debian's chromium through chromedriver): enrol two people
from photos, see them listed, search with a new photo and see the right name on top, delete one.

usage: serve_page.py ARCFACE MODEL.onnx LFW_RAW_DIR OUT_DIR
"""
import os
import shutil
import subprocess
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service as Driver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.dirname(__file__))
from serve_lib import Server  # noqa: E402

binary, model, raw, out = sys.argv[1:5]
shutil.rmtree(out, ignore_errors=True)
os.makedirs(out)
gallery = os.path.join(out, "g.db")
subprocess.run([binary, "gallery", "create", "--gallery", gallery, "--model", model,
                "--mean", "0.49804", "--std", "0.50196"], check=True, stdout=subprocess.DEVNULL)
server = Server(binary, gallery, "--detector", "dlib", "--api-key", "page-key")


def lfw(person, n):
    return os.path.abspath(os.path.join(raw, person, f"{person}_{n:04d}.jpg"))


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
    options.add_argument(flag)
options.add_argument("--window-size=1100,1400")
browser = webdriver.Chrome(service=Driver("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(browser, 60)


def people():
    """The names in the table, read in one step (the page redraws it after every change)."""
    return browser.execute_script(
        "return [...document.querySelectorAll('#people tr')].map(r => r.dataset.name)")

try:
    browser.get(server.url + "/")
    # Without the key the page says so; with it, the list loads.
    wait.until(seen.text_to_be_present_in_element((By.ID, "people-status"), "API key"))
    browser.find_element(By.ID, "api-key").send_keys("page-key")
    browser.find_element(By.ID, "enrol-name").click()  # the key's change event refreshes
    wait.until(seen.text_to_be_present_in_element((By.ID, "people-count"), "Nobody is enrolled"))

    def enrol(name, photos):
        field = browser.find_element(By.ID, "enrol-name")
        field.clear()
        field.send_keys(name)
        browser.find_element(By.ID, "enrol-files").send_keys("\n".join(photos))
        browser.find_element(By.ID, "enrol-button").click()
        wait.until(seen.text_to_be_present_in_element(
            (By.ID, "enrol-status"), f"Enrolled {len(photos)} faces of {name}"))
        wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-name="{name}"]')))

    enrol("Hugo Chavez", [lfw("Hugo_Chavez", 2), lfw("Hugo_Chavez", 27)])
    enrol("Jennifer Garner", [lfw("Jennifer_Garner", 1), lfw("Jennifer_Garner", 5)])
    assert people() == ["Hugo Chavez", "Jennifer Garner"], people()

    browser.find_element(By.ID, "search-file").send_keys(lfw("Jennifer_Garner", 3))
    browser.find_element(By.ID, "search-button").click()
    wait.until(seen.text_to_be_present_in_element((By.ID, "search-status"), "face(s) found"))
    matches = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#matches li")]
    print("matches:", matches)
    assert matches and matches[0].startswith("Jennifer Garner "), matches
    canvas = browser.find_element(By.ID, "canvas")
    assert int(canvas.get_attribute("width")) > 0, "the photo with its box was not drawn"
    browser.save_screenshot(os.path.join(out, "search.png"))

    browser.find_element(By.CSS_SELECTOR, 'tr[data-name="Hugo Chavez"] button.delete').click()
    wait.until(seen.text_to_be_present_in_element((By.ID, "people-status"), "Deleted Hugo Chavez"))
    wait.until(lambda b: people() == ["Jennifer Garner"])
    print("web page OK")
finally:
    browser.quit()
    server.stop()

# The real binary, as a user runs it.
set(arcface_bin $<TARGET_FILE:arcface_cli>)
set(sample ${PROJECT_SOURCE_DIR}/data/sample)

# A test of the binary that checks its exit status and its output together.
function(add_cli_test name status regex)
  add_test(NAME ${name} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/expect.sh ${status} "${regex}" ${ARGN})
endfunction()

add_cli_test(cli.help 0 "select.*train.*eval"
  ${arcface_bin} --help)

add_cli_test(cli.select_sample 0 "Total persons: 24.*Selected classes: 5.*wrote 50 records"
  ${arcface_bin} select --root ${sample}/train --classes 5 --max-per-class 10
                 --out ${CMAKE_CURRENT_BINARY_DIR}/cli_select/train_list.txt)

if(EXISTS ${ARCFACE_SHARED_DATA}/lfw/lfw-align-112)
  add_cli_test(cli.select_lfw 0
    "Total persons: 5749.*Qualified persons \\(>=10 images\\): 158.*Selected classes: 100.*Classes at the cap: 43.*wrote 1638 records"
    ${arcface_bin} select --root ${ARCFACE_SHARED_DATA}/lfw/lfw-align-112
      --out ${CMAKE_CURRENT_BINARY_DIR}/cli_select/lfw_list.txt)
endif()

add_cli_test(cli.unknown_config_key 1 "error: unknown config key 'training.speed'"
  ${arcface_bin} train --config ${PROJECT_SOURCE_DIR}/config/demo.yaml --set training.speed=11)

add_cli_test(cli.missing_pairs 1 "error: .*none.pt"
  ${arcface_bin} eval --model none.pt --root ${sample}/lfw --pairs ${sample}/absent.txt)

# select -> train -> eval -> embed -> verify on the sample, exit codes and outputs checked.
add_cli_test(cli.pipeline 0 "pipeline OK"
  bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_pipeline.sh ${arcface_bin} ${sample}
                 ${CMAKE_CURRENT_BINARY_DIR}/cli_pipeline)
set_tests_properties(cli.pipeline PROPERTIES TIMEOUT 600)

if(ARCFACE_WITH_DLIB)
  # align on raw LFW photos with the default detector (no model to download).
  add_cli_test(cli.align_raw 0 "4 images: 4 aligned, 0 without a face"
    bash -c "rm -rf '${CMAKE_CURRENT_BINARY_DIR}/cli_align' && '${arcface_bin}' align --src '${PROJECT_SOURCE_DIR}/tests/data/raw' --dst '${CMAKE_CURRENT_BINARY_DIR}/cli_align' --size 128 --gray --no-progress")

  # eval straight from raw photos: detection and alignment on the fly, recorded in the report.
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/raw_pairs.txt
    "Abel_Pacheco/Abel_Pacheco_0001.jpg Abel_Pacheco/Abel_Pacheco_0002.jpg 1\n"
    "Abdul_Rahman/Abdul_Rahman_0001.jpg Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg 0\n")
  add_cli_test(cli.eval_raw_dlib 0 "2 pairs, 4 images.*no face found in 0 images.*face_detection.: .dlib, 5-point warp to 112x112"
    bash -c "'${arcface_bin}' eval --model '${CMAKE_CURRENT_BINARY_DIR}/fixture_model/last.pt' --root '${PROJECT_SOURCE_DIR}/tests/data/raw' --pairs '${CMAKE_CURRENT_BINARY_DIR}/raw_pairs.txt' --preprocess dlib --no-progress --out '${CMAKE_CURRENT_BINARY_DIR}/cli_eval_raw' && grep '\"face_detection\": \"dlib, 5-point warp to 112x112\"' '${CMAKE_CURRENT_BINARY_DIR}/cli_eval_raw/metrics.json'")
  set_tests_properties(cli.eval_raw_dlib PROPERTIES FIXTURES_REQUIRED model)
endif()
if(ARCFACE_WITH_OPENCV)
  add_cli_test(cli.align_bad_detector 1 "error: the yunet detector needs its .onnx model file"
    ${arcface_bin} align --src ${PROJECT_SOURCE_DIR}/tests/data/raw
                   --dst ${CMAKE_CURRENT_BINARY_DIR}/cli_align_bad --detector yunet)
else()
  # A build without OpenCV lists the commands it lacks and says what they need.
  add_cli_test(cli.align_needs_opencv 1 "error: 'arcface align' is not in this build: it needs OpenCV"
    ${arcface_bin} align --src ${PROJECT_SOURCE_DIR}/tests/data/raw --dst ${CMAKE_CURRENT_BINARY_DIR}/x)
  add_cli_test(cli.eval_preprocess_needs_opencv 1 "error: --preprocess dlib: detecting and aligning faces needs a build with OpenCV"
    ${arcface_bin} eval --model ${CMAKE_CURRENT_BINARY_DIR}/fixture_model/last.pt --root ${sample}/lfw
      --pairs ${sample}/pairs.txt --preprocess dlib --no-progress --out ${CMAKE_CURRENT_BINARY_DIR}/cli_eval_pre)
  set_tests_properties(cli.eval_preprocess_needs_opencv PROPERTIES FIXTURES_REQUIRED model)
endif()

# Fine-tuning from weights saved by Python (seed 002's checkpoint dictionary).
add_cli_test(cli.train_from_python_weights 0 "Backbone initialised from seed 002-style checkpoint .*interop_ir18_seed002.pth' \\(ir_resnet18, epoch 24\\)"
  ${arcface_bin} train --config ${CMAKE_CURRENT_SOURCE_DIR}/fixture_model.yaml
                 --max-steps 1 --no-progress
                 --set model.backbone=iresnet18 --set model.embedding_size=512
                 --set model.pretrained=${CMAKE_CURRENT_SOURCE_DIR}/data/interop_ir18_seed002.pth
                 --set data.input_size=112 --set data.resize=112 --set data.channels=3
                 --set training.batch_size=4 --set data.train_root=${sample}/train
                 --set data.train_list=${CMAKE_CURRENT_BINARY_DIR}/fixture_model/train_list.txt
                 --set paths.checkpoints_path=${CMAKE_CURRENT_BINARY_DIR}/cli_finetune)
set_tests_properties(cli.train_from_python_weights PROPERTIES FIXTURES_REQUIRED model)
add_cli_test(cli.train_from_wrong_weights 1 "error: model.pretrained .* holds weights for iresnet18, the config trains mobilefacenet"
  ${arcface_bin} train --config ${CMAKE_CURRENT_SOURCE_DIR}/fixture_model.yaml
                 --max-steps 1 --no-progress --set model.backbone=mobilefacenet
                 --set model.pretrained=${CMAKE_CURRENT_SOURCE_DIR}/data/interop_ir18_seed002.pth
                 --set data.train_root=${sample}/train
                 --set data.train_list=${CMAKE_CURRENT_BINARY_DIR}/fixture_model/train_list.txt
                 --set paths.checkpoints_path=${CMAKE_CURRENT_BINARY_DIR}/cli_finetune_bad)
set_tests_properties(cli.train_from_wrong_weights PROPERTIES FIXTURES_REQUIRED model)

# A facenet-pytorch-format state dict (legacy torch.save, with its logits layer) in verify.
add_cli_test(cli.verify_facenet_weights 0 "score -?[0-9.]+ \\(threshold 0.5000, flip concat, (fp32|bf16)\\)"
  ${arcface_bin} verify --model ${CMAKE_CURRENT_SOURCE_DIR}/data/interop_inception_resnet_v1.pt
                 --backbone inception_resnet_v1 --input-size 160 --mean 0.5 --std 0.50196 --threshold 0.5
                 ${sample}/lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg ${sample}/lfw/AJ_Lamas/AJ_Lamas_0001.jpg)

# --device auto runs where the model can (the CPU here); an unknown device is named.
add_cli_test(cli.device_auto 0 "score -?[0-9.]+ \\(threshold 0.5000"
  ${arcface_bin} verify --model ${CMAKE_CURRENT_SOURCE_DIR}/data/interop_inception_resnet_v1.pt --device auto
                 --backbone inception_resnet_v1 --input-size 160 --mean 0.5 --std 0.50196 --threshold 0.5
                 ${sample}/lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg ${sample}/lfw/AJ_Lamas/AJ_Lamas_0001.jpg)
add_cli_test(cli.device_unknown 1 "error: unknown device 'tpu' \\(expected cpu, cuda, cuda:N or auto\\)"
  ${arcface_bin} verify --model ${CMAKE_CURRENT_SOURCE_DIR}/data/interop_inception_resnet_v1.pt --device tpu
                 --backbone inception_resnet_v1 --input-size 160 --threshold 0.5
                 ${sample}/lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg ${sample}/lfw/AJ_Lamas/AJ_Lamas_0001.jpg)

# Hard-example distillation: the fixture model teaches a student started from its weights.
set(distill_dir ${CMAKE_CURRENT_BINARY_DIR}/cli_distill)
add_cli_test(cli.distill 0 "Distilling from resnet_face18 checkpoint .*: margin loss weight 1, embedding weight 1, logit weight 1 \\(T 4\\), hard examples by loss weigh 3x"
  bash -c "rm -rf '${distill_dir}' && '${arcface_bin}' distill --config '${CMAKE_CURRENT_SOURCE_DIR}/fixture_model.yaml' --teacher '${fixture_dir}/last.pt' --max-steps 2 --no-progress --set model.pretrained='${fixture_dir}/last.pt' --set distill.logit_weight=1 --set distill.hard_rule=loss --set data.train_root='${sample}/train' --set data.train_list='${fixture_dir}/train_list.txt' --set paths.checkpoints_path='${distill_dir}' && test -s '${distill_dir}/teacher_embeddings.pt' && test -s '${distill_dir}/last.pt'")
set_tests_properties(cli.distill PROPERTIES FIXTURES_REQUIRED model)
# A teacher in Python's format that sees the faces its own way (IR-ResNet18, 112x112 RGB,
# facenet normalisation) teaches a 48x48 grey student; without its input it is refused by name.
set(python_teacher ${CMAKE_CURRENT_SOURCE_DIR}/data/interop_ir18_plain.pth)
set(python_teacher_args distill --config ${CMAKE_CURRENT_SOURCE_DIR}/fixture_model.yaml
    --teacher ${python_teacher} --max-steps 1 --no-progress --set distill.teacher_backbone=iresnet18
    --set model.embedding_size=512 --set data.train_root=${sample}/train
    --set data.train_list=${fixture_dir}/train_list.txt)
add_cli_test(cli.distill_python_teacher 0 "Distilling from state dict '[^']*interop_ir18_plain.pth'"
  ${arcface_bin} ${python_teacher_args} --set distill.teacher_input_size=112
                 --set distill.teacher_color=rgb --set distill.teacher_std=0.50196
                 --set paths.checkpoints_path=${CMAKE_CURRENT_BINARY_DIR}/cli_distill_python)
set_tests_properties(cli.distill_python_teacher PROPERTIES FIXTURES_REQUIRED model)
add_cli_test(cli.distill_python_teacher_needs_its_input 1 "error: distill.teacher: .*teacher_input_size, teacher_color"
  ${arcface_bin} ${python_teacher_args}
                 --set paths.checkpoints_path=${CMAKE_CURRENT_BINARY_DIR}/cli_distill_python_bad)
set_tests_properties(cli.distill_python_teacher_needs_its_input PROPERTIES FIXTURES_REQUIRED model)
add_cli_test(cli.distill_needs_teacher 1 "error: distill needs a teacher: --teacher MODEL or distill.teacher"
  ${arcface_bin} distill --config ${CMAKE_CURRENT_SOURCE_DIR}/fixture_model.yaml)

# A truncated JPEG is named by eval, embed, verify and train; --skip-missing and
# data.bad_images: skip leave it out and list it.
add_cli_test(cli.damaged_images 0 "damaged images OK"
  bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_damaged.sh ${arcface_bin} ${sample} ${fixture_dir}/last.pt
       ${CMAKE_CURRENT_BINARY_DIR}/cli_damaged)
set_tests_properties(cli.damaged_images PROPERTIES FIXTURES_REQUIRED model)

# Command-line mistakes: our error format and exit status 2.
add_cli_test(cli.bad_option_value 2 "^error: .*--batch-size"
  ${arcface_bin} eval --model m.pt --pairs p.txt --batch-size lots)
add_cli_test(cli.unknown_option 2 "^error: .*--colour"
  ${arcface_bin} embed --model m.pt --colour rgb --out e.npy a.jpg)
# insightface's 127.5 / 128 are 0..255 values: refused, with the 0..1 equivalent.
add_cli_test(cli.mean_on_255_pixels 1
  "error: --mean = 127.5 is outside \\[0, 1\\].*on 0..255 pixels that is 0.5\\)"
  ${arcface_bin} embed --model ${CMAKE_CURRENT_SOURCE_DIR}/data/tiny_embedder.onnx --input-size 64
    --mean 127.5 --std 128 --out ${CMAKE_CURRENT_BINARY_DIR}/cli_mean/e.npy
    ${sample}/lfw/Abel_Pacheco/Abel_Pacheco_0001.jpg)
add_cli_test(cli.std_on_255_pixels 1
  "error: --std = 128 is outside \\(0, 1\\].*on 0..255 pixels that is 0.50196\\)"
  ${arcface_bin} embed --model ${CMAKE_CURRENT_SOURCE_DIR}/data/tiny_embedder.onnx --input-size 64
    --mean 0.5 --std 128 --out ${CMAKE_CURRENT_BINARY_DIR}/cli_mean/e.npy
    ${sample}/lfw/Abel_Pacheco/Abel_Pacheco_0001.jpg)
# --mean and --std take one value (or r,g,b) and leave the image arguments alone.
add_cli_test(cli.mean_std_keep_the_images 0 "Wrote 2 descriptors of 512 values .*, (fp32|bf16), flip none"
  ${arcface_bin} embed --model ${CMAKE_CURRENT_SOURCE_DIR}/data/interop_ir18_plain.pth
    --backbone iresnet18 --mean 0.5,0.5,0.5 --std 0.5 ${sample}/lfw/Abel_Pacheco/Abel_Pacheco_0001.jpg
    ${sample}/lfw/Abel_Pacheco/Abel_Pacheco_0004.jpg --out ${CMAKE_CURRENT_BINARY_DIR}/cli_mean/two.npy)

if(ARCFACE_WITH_SERVICE)
  # A persistent gallery through the command: enrol, identify, edit, and the refusals.
  add_cli_test(cli.gallery 0 "gallery OK"
    bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_gallery.sh ${arcface_bin} ${sample} ${fixture_dir}/last.pt
         ${CMAKE_CURRENT_SOURCE_DIR}/data/tiny_embedder.onnx ${CMAKE_CURRENT_BINARY_DIR}/cli_gallery)
  set_tests_properties(cli.gallery PROPERTIES FIXTURES_REQUIRED model)
  add_cli_test(cli.identify_eval 0
    "Enrolled [0-9]+ people \\(1 per person, best face per subject\\).*Rank-1 [0-9.]+%.*DIR at FAR 0.01.*mean descriptor per subject"
    ${arcface_bin} identify-eval --model ${fixture_dir}/last.pt --root ${sample}/lfw
      --aggregation best,mean --no-progress --out ${CMAKE_CURRENT_BINARY_DIR}/cli_identify_eval.json)
  set_tests_properties(cli.identify_eval PROPERTIES FIXTURES_REQUIRED model)

  # `arcface serve` on raw LFW photos with the pretrained recogniser: the API and its refusals,
  # the key, the limits, SIGTERM and SIGKILL; then the web page in chromium. Debian's python3
  # (it has selenium), not whichever python3 comes first on the PATH.
  find_program(SYSTEM_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
  set(fr_feature ${ARCFACE_SHARED_DATA}/models/fr_feature/fr_feature.onnx)
  if(ARCFACE_WITH_DLIB AND EXISTS ${fr_feature} AND EXISTS ${ARCFACE_SHARED_DATA}/lfw/raw
     AND SYSTEM_PYTHON)
    add_cli_test(serve.api 0 "serve API OK"
      ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/serve_api.py ${arcface_bin} ${fr_feature}
        ${ARCFACE_SHARED_DATA}/lfw/raw ${CMAKE_CURRENT_BINARY_DIR}/serve_api)
    add_cli_test(serve.page 0 "web page OK"
      ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/serve_page.py ${arcface_bin} ${fr_feature}
        ${ARCFACE_SHARED_DATA}/lfw/raw ${CMAKE_CURRENT_BINARY_DIR}/serve_page)
    set_tests_properties(serve.api serve.page PROPERTIES TIMEOUT 600)
  endif()
endif()

# A folder tree packed as insightface's RecordIO, a model trained from the .rec alone, and a
# damaged .rec refused before training, naming the record.
add_cli_test(cli.pack 0 "pack OK"
  bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_pack.sh ${arcface_bin} ${sample} ${CMAKE_CURRENT_SOURCE_DIR}
       ${CMAKE_CURRENT_BINARY_DIR}/cli_pack)

# The real binary, as a user runs it.
set(arcface_bin $<TARGET_FILE:arcface_cli>)
set(sample ${PROJECT_SOURCE_DIR}/data/sample)

add_test(NAME cli.help COMMAND ${arcface_bin} --help)
set_tests_properties(cli.help PROPERTIES PASS_REGULAR_EXPRESSION "select.*train.*eval")

add_test(NAME cli.select_sample
         COMMAND ${arcface_bin} select --root ${sample}/train --classes 5 --max-per-class 10
                 --out ${CMAKE_CURRENT_BINARY_DIR}/cli_select/train_list.txt)
set_tests_properties(cli.select_sample PROPERTIES
  PASS_REGULAR_EXPRESSION "Total persons: 24.*Selected classes: 5.*wrote 50 records")

if(EXISTS ${ARCFACE_SHARED_DATA}/lfw/lfw-align-112)
  add_test(NAME cli.select_lfw
           COMMAND ${arcface_bin} select --root ${ARCFACE_SHARED_DATA}/lfw/lfw-align-112
                   --out ${CMAKE_CURRENT_BINARY_DIR}/cli_select/lfw_list.txt)
  set_tests_properties(cli.select_lfw PROPERTIES PASS_REGULAR_EXPRESSION
    "Total persons: 5749.*Qualified persons \\(>=10 images\\): 158.*Selected classes: 100.*Classes at the cap: 43.*wrote 1638 records")
endif()

add_test(NAME cli.unknown_config_key
         COMMAND ${arcface_bin} train --config ${PROJECT_SOURCE_DIR}/config/demo.yaml --set training.speed=11)
set_tests_properties(cli.unknown_config_key PROPERTIES
  PASS_REGULAR_EXPRESSION "error: unknown config key 'training.speed'")

add_test(NAME cli.missing_pairs
         COMMAND ${arcface_bin} eval --model none.pt --root ${sample}/lfw --pairs ${sample}/absent.txt)
set_tests_properties(cli.missing_pairs PROPERTIES PASS_REGULAR_EXPRESSION "error: .*none.pt")

# select -> train -> eval -> embed -> verify on the sample, exit codes and outputs checked.
add_test(NAME cli.pipeline
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_pipeline.sh ${arcface_bin} ${sample}
                 ${CMAKE_CURRENT_BINARY_DIR}/cli_pipeline)
set_tests_properties(cli.pipeline PROPERTIES TIMEOUT 600)

# align on raw LFW photos with the default detector (no model to download).
add_test(NAME cli.align_raw
         COMMAND bash -c "rm -rf '${CMAKE_CURRENT_BINARY_DIR}/cli_align' && '${arcface_bin}' align --src '${PROJECT_SOURCE_DIR}/tests/data/raw' --dst '${CMAKE_CURRENT_BINARY_DIR}/cli_align' --size 128 --gray --no-progress")
set_tests_properties(cli.align_raw PROPERTIES
  PASS_REGULAR_EXPRESSION "4 images: 4 aligned, 0 without a face")
add_test(NAME cli.align_bad_detector
         COMMAND ${arcface_bin} align --src ${PROJECT_SOURCE_DIR}/tests/data/raw
                 --dst ${CMAKE_CURRENT_BINARY_DIR}/cli_align_bad --detector yunet)
set_tests_properties(cli.align_bad_detector PROPERTIES
  PASS_REGULAR_EXPRESSION "error: the yunet detector needs its .onnx model file")

# eval straight from raw photos: detection and alignment on the fly, recorded in the report.
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/raw_pairs.txt
  "Abel_Pacheco/Abel_Pacheco_0001.jpg Abel_Pacheco/Abel_Pacheco_0002.jpg 1\n"
  "Abdul_Rahman/Abdul_Rahman_0001.jpg Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg 0\n")
add_test(NAME cli.eval_raw_dlib
         COMMAND bash -c "'${arcface_bin}' eval --model '${CMAKE_CURRENT_BINARY_DIR}/fixture_model/last.pt' --root '${PROJECT_SOURCE_DIR}/tests/data/raw' --pairs '${CMAKE_CURRENT_BINARY_DIR}/raw_pairs.txt' --preprocess dlib --no-progress --out '${CMAKE_CURRENT_BINARY_DIR}/cli_eval_raw' && grep '\"face_detection\": \"dlib, 5-point warp to 112x112\"' '${CMAKE_CURRENT_BINARY_DIR}/cli_eval_raw/metrics.json'")
set_tests_properties(cli.eval_raw_dlib PROPERTIES FIXTURES_REQUIRED model
  PASS_REGULAR_EXPRESSION "2 pairs, 4 images.*no face found in 0 images.*face_detection.: .dlib, 5-point warp to 112x112")

# Fine-tuning from weights saved by Python (seed 002's checkpoint dictionary).
add_test(NAME cli.train_from_python_weights
         COMMAND ${arcface_bin} train --config ${CMAKE_CURRENT_SOURCE_DIR}/fixture_model.yaml
                 --max-steps 1 --no-progress
                 --set model.backbone=iresnet18 --set model.embedding_size=512
                 --set model.pretrained=${CMAKE_CURRENT_SOURCE_DIR}/data/interop_ir18_seed002.pth
                 --set data.input_size=112 --set data.resize=112 --set data.channels=3
                 --set training.batch_size=4 --set data.train_root=${sample}/train
                 --set data.train_list=${CMAKE_CURRENT_BINARY_DIR}/fixture_model/train_list.txt
                 --set paths.checkpoints_path=${CMAKE_CURRENT_BINARY_DIR}/cli_finetune)
set_tests_properties(cli.train_from_python_weights PROPERTIES FIXTURES_REQUIRED model
  PASS_REGULAR_EXPRESSION "Backbone initialised from seed 002-style checkpoint .*interop_ir18_seed002.pth' \\(ir_resnet18, epoch 24\\)")
add_test(NAME cli.train_from_wrong_weights
         COMMAND ${arcface_bin} train --config ${CMAKE_CURRENT_SOURCE_DIR}/fixture_model.yaml
                 --max-steps 1 --no-progress --set model.backbone=mobilefacenet
                 --set model.pretrained=${CMAKE_CURRENT_SOURCE_DIR}/data/interop_ir18_seed002.pth
                 --set data.train_root=${sample}/train
                 --set data.train_list=${CMAKE_CURRENT_BINARY_DIR}/fixture_model/train_list.txt
                 --set paths.checkpoints_path=${CMAKE_CURRENT_BINARY_DIR}/cli_finetune_bad)
set_tests_properties(cli.train_from_wrong_weights PROPERTIES FIXTURES_REQUIRED model
  PASS_REGULAR_EXPRESSION "error: model.pretrained .* holds weights for iresnet18, the config trains mobilefacenet")

# A facenet-pytorch-format state dict (legacy torch.save, with its logits layer) in verify.
add_test(NAME cli.verify_facenet_weights
         COMMAND ${arcface_bin} verify --model ${CMAKE_CURRENT_SOURCE_DIR}/data/interop_inception_resnet_v1.pt
                 --backbone inception_resnet_v1 --input-size 160 --mean 0.5 --std 0.50196 --threshold 0.5
                 ${sample}/lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg ${sample}/lfw/AJ_Lamas/AJ_Lamas_0001.jpg)
set_tests_properties(cli.verify_facenet_weights PROPERTIES
  PASS_REGULAR_EXPRESSION "score -?[0-9.]+ \\(threshold 0.5000, flip concat\\)")

# Hard-example distillation: the fixture model teaches a student started from its weights.
set(distill_dir ${CMAKE_CURRENT_BINARY_DIR}/cli_distill)
add_test(NAME cli.distill
         COMMAND bash -c "rm -rf '${distill_dir}' && '${arcface_bin}' distill --config '${CMAKE_CURRENT_SOURCE_DIR}/fixture_model.yaml' --teacher '${fixture_dir}/last.pt' --max-steps 2 --no-progress --set model.pretrained='${fixture_dir}/last.pt' --set distill.logit_weight=1 --set distill.hard_rule=loss --set data.train_root='${sample}/train' --set data.train_list='${fixture_dir}/train_list.txt' --set paths.checkpoints_path='${distill_dir}' && test -s '${distill_dir}/teacher_embeddings.pt' && test -s '${distill_dir}/last.pt'")
set_tests_properties(cli.distill PROPERTIES FIXTURES_REQUIRED model
  PASS_REGULAR_EXPRESSION "Distilling from resnet_face18 checkpoint .*: embedding weight 1, logit weight 1 \\(T 4\\), hard examples by loss weigh 3x")
# A teacher in Python's format that sees the faces its own way (IR-ResNet18, 112x112 RGB,
# facenet normalisation) teaches a 48x48 grey student; without its input it is refused by name.
set(python_teacher ${CMAKE_CURRENT_SOURCE_DIR}/data/interop_ir18_plain.pth)
set(python_teacher_args distill --config ${CMAKE_CURRENT_SOURCE_DIR}/fixture_model.yaml
    --teacher ${python_teacher} --max-steps 1 --no-progress --set distill.teacher_backbone=iresnet18
    --set model.embedding_size=512 --set data.train_root=${sample}/train
    --set data.train_list=${fixture_dir}/train_list.txt)
add_test(NAME cli.distill_python_teacher
         COMMAND ${arcface_bin} ${python_teacher_args} --set distill.teacher_input_size=112
                 --set distill.teacher_color=rgb --set distill.teacher_std=0.50196
                 --set paths.checkpoints_path=${CMAKE_CURRENT_BINARY_DIR}/cli_distill_python)
set_tests_properties(cli.distill_python_teacher PROPERTIES FIXTURES_REQUIRED model
  PASS_REGULAR_EXPRESSION "Distilling from state dict '[^']*interop_ir18_plain.pth'")
add_test(NAME cli.distill_python_teacher_needs_its_input
         COMMAND ${arcface_bin} ${python_teacher_args}
                 --set paths.checkpoints_path=${CMAKE_CURRENT_BINARY_DIR}/cli_distill_python_bad)
set_tests_properties(cli.distill_python_teacher_needs_its_input PROPERTIES FIXTURES_REQUIRED model
  PASS_REGULAR_EXPRESSION "error: distill.teacher: .*teacher_input_size, teacher_color")
add_test(NAME cli.distill_needs_teacher
         COMMAND ${arcface_bin} distill --config ${CMAKE_CURRENT_SOURCE_DIR}/fixture_model.yaml)
set_tests_properties(cli.distill_needs_teacher PROPERTIES
  PASS_REGULAR_EXPRESSION "error: distill needs a teacher: --teacher MODEL or distill.teacher")

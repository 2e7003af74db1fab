# Sourced by scripts/setup.sh after `pip install -e ".[all,dev]"`: test-only packages that must skip their dependency pins.
# openpi-client / openpi-server declare numpy<2 in metadata only (shared/reference/wire-protocol.md §8).
pip install --no-deps "openpi-client==0.1.2" "openpi-server==0.1.0"
pip install "dm-tree>=0.1.8" "typing_extensions>=4"
# tests/data/test_data_lerobot_interop.py: lerobot 0.4.4 is the last release for Python 3.11 (LeRobotDataset v3.0).
# --no-deps: lerobot pins torch<2.11, av<16 and huggingface-hub<0.36, datasets 4.x pins huggingface-hub<2; the
# dataset code the test runs works on this stack's newer versions. torchcodec 0.13 is the newest release that loads
# beside CPU torch (0.14+ need CUDA libraries); it decodes lerobot's videos with the system FFmpeg (apt-packages.txt).
pip install -q --no-deps "lerobot==0.4.4" "datasets==4.8.5" "torchcodec==0.13.0"
pip install -q "pandas==3.1.1" "dill==0.4.1" "multiprocess==0.70.19" "xxhash==4.1.0"
# tests/data/test_data_lerobot_policy.py: lerobot's policy classes, factory, eval rollout and record step import these
# (lerobot's own pins: draccus==0.10.0 exactly, einops<0.9, pyserial<4, deepdiff<9, jsonlines<5, termcolor<4); their
# own dependencies (mergedeep, pyyaml-include, toml, typing-inspect, orderly-set) clash with nothing here.
pip install -q "draccus==0.10.0" "einops==0.8.2" "pyserial==3.5" "deepdiff==8.6.2" "jsonlines==4.0.0" "termcolor==3.3.0"
# tests/data/test_data_lerobot_plugin.py: lerobot-record's module imports its OpenCV camera (cv2; lerobot pins
# opencv-python-headless < 4.13; its one dependency, numpy, is here). The test installs the plugin distribution
# (integrations/lerobot_policy_worldpolicy) itself, into its temporary folder.
pip install -q --no-deps "opencv-python-headless==4.12.0.88"

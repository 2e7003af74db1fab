# Sourced by .ci/run after `pip install -e ".[all,dev]"`: test-only packages that must skip their dependency pins.
# openpi-client / openpi-server declare numpy<2 in metadata only (shared/reference/wire-protocol.md §8).
pip install --no-deps "openpi-client==0.1.2" "openpi-server==0.1.0"
pip install "dm-tree>=0.1.8" "typing_extensions>=4"

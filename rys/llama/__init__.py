"""llama-server provisioning: find a binary, or build the pinned llama.cpp source."""

# The probe sets live at the top of the repo (probes/) as data, and ship inside the package as
# rys.probe_data; pyproject.toml alone cannot combine package discovery with that mapping.
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["rys", "rys.*"]) + ["rys.probe_data"],
    package_dir={"rys.probe_data": "probes"},
    package_data={"rys.probe_data": ["*.json", "*.jsonl", "*.md"]},
)

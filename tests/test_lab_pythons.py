"""Which Python a rehearsed project's lab hosts run: asked for by the project, offered by the lab's images."""

from __future__ import annotations

from pathlib import Path

import pytest

from djdeploy.lab import image, project, pythons
from djdeploy.lab.layout import LabLayout


def _project(directory: Path, pyproject: str = "", version_file: str | None = None) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "requirements.txt").write_text("django==6.0.10\n")
    if pyproject:
        (directory / "pyproject.toml").write_text(pyproject)
    if version_file is not None:
        (directory / ".python-version").write_text(version_file)
    return directory


@pytest.mark.parametrize(
    ("pyproject", "version"),
    [
        ("", "3.11"),
        ('[project]\nname = "a"\nrequires-python = ">=3.10"\n', "3.11"),
        ('[project]\nname = "a"\nrequires-python = ">=3.12"\n', "3.13"),
        ('[project]\nname = "a"\nrequires-python = ">=3.13,<3.14"\n', "3.13"),
        ('[project]\nname = "a"\nrequires-python = ">3.13"\n', "3.13"),
        ('[tool.poetry.dependencies]\npython = "^3.11"\n', "3.11"),
        ('[tool.poetry.dependencies]\npython = "^3.12"\n', "3.13"),
        ('[tool.poetry.dependencies]\npython = "~3.13"\n', "3.13"),
    ],
)
def test_the_python_is_the_default_when_allowed_else_the_first_the_project_accepts(
    tmp_path: Path, pyproject: str, version: str
) -> None:
    directory = _project(tmp_path / "site", pyproject)
    assert pythons.choose(pythons.request_of(directory)).python_version == version


def test_python_version_file_and_lab_setting_come_before_requires_python(tmp_path: Path) -> None:
    pyproject = '[project]\nname = "a"\nrequires-python = ">=3.11"\n'
    directory = _project(tmp_path / "site", pyproject, version_file="# pinned\n3.13.5\n")
    assert pythons.choose(pythons.request_of(directory)) == image.DEBIAN_13
    assert pythons.choose(pythons.request_of(directory, "3.11")) == image.DEBIAN_12


@pytest.mark.parametrize(
    ("pyproject", "version_file", "asked"),
    [
        ('[project]\nname = "a"\nrequires-python = "==3.12.*"\n', None, "Python ==3.12.*"),
        ('[project]\nname = "a"\nrequires-python = ">=3.14"\n', None, "Python >=3.14"),
        ("", "3.12\n", "Python 3.12"),
    ],
)
def test_a_python_the_lab_lacks_is_named_with_those_it_offers(
    tmp_path: Path, pyproject: str, version_file: str | None, asked: str
) -> None:
    directory = _project(tmp_path / "site", pyproject, version_file)
    with pytest.raises(pythons.PythonUnavailableError) as raised:
        pythons.choose(pythons.request_of(directory))
    assert f"asks for {asked} (" in raised.value.message
    assert "offer only Python 3.11 (Debian 12), 3.13 (Debian 13)" in raised.value.message


def test_a_requirement_that_is_no_version_is_refused_saying_so(tmp_path: Path) -> None:
    directory = _project(tmp_path / "site", '[project]\nname = "a"\nrequires-python = "latest"\n')
    with pytest.raises(pythons.PythonUnavailableError, match="'latest', is not a version requirement"):
        pythons.choose(pythons.request_of(directory))
    with pytest.raises(pythons.PythonUnavailableError, match="names no Python version"):
        pythons.request_of(directory, "newest")


def test_a_project_on_python_3_13_builds_in_the_debian_13_image(tmp_path: Path) -> None:
    directory = _project(tmp_path / "site", '[project]\nname = "a"\nrequires-python = ">=3.13"\n')
    (directory / "site").mkdir()
    for module in ("settings.py", "wsgi.py"):
        (directory / "site" / module).touch()
    (directory / "lab.yaml").write_text("settings: site.settings\nwsgi: site.wsgi\n")
    layout = LabLayout(tmp_path / "cache", tmp_path / "state")
    arguments = tmp_path / "state" / "projects" / "site" / "arguments.json"
    project.write_inventory(layout, project.load(directory / "lab.yaml"), ["lab1"])
    text = arguments.read_text()
    assert '"pythonVersion": "3.13"' in text
    assert f'"hostRoot": "{image.image_path(layout, image.DEBIAN_13)}"' in text
    (directory / "lab.yaml").write_text("settings: site.settings\nwsgi: site.wsgi\npython: 3.11\n")
    project.write_inventory(layout, project.load(directory / "lab.yaml"), ["lab1"])
    assert "pythonVersion" not in arguments.read_text()


def test_the_debian_12_image_keeps_its_recipe_and_debian_13_has_its_own() -> None:
    assert image.DEBIAN_12.hash() == "65b0b9692aee62f5"
    assert image.DEBIAN_13.hash() != image.DEBIAN_12.hash()

"""lab.yaml as lab.rehearse reads it: modules that the project directory does not hold are named at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from djdeploy.inventory import InventoryError
from djdeploy.lab import project as lab_project
from tests.lab.helpers import REPO

PROJECT = REPO / "tests" / "lab" / "cookiecutter_project"


def test_the_cookiecutter_project_reads_as_written() -> None:
    project = lab_project.load(PROJECT / "lab.yaml")
    assert (project.name, project.settings_module, project.wsgi_module) == (
        "shop",
        "config.settings.prod",
        "config.wsgi",
    )


def test_a_wsgi_module_that_is_not_there_names_the_path_tried_and_where(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    lab_file = project / "lab.yaml"
    lab_file.write_text(lab_file.read_text().replace("wsgi: config.wsgi", "wsgi: shop.wsgi"))
    with pytest.raises(InventoryError) as raised:
        lab_project.load(lab_file)
    assert raised.value.message == (
        f"{lab_file}:4 wsgi: no module shop.wsgi: the site imports its code from {project}, where neither "
        "shop/wsgi.py nor shop/wsgi/__init__.py exists. Name a module of the project, as Python imports it "
        "from the directory of manage.py. Its WSGI modules: config.wsgi."
    )

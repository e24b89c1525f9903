"""The README's API table and docs/API.md are generated from the code and must be current."""

import importlib.util
import inspect
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("api_table", os.path.join(ROOT, "scripts",
                                                                       "api_table.py"))
api_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(api_table)


def test_readme_table_and_api_doc_are_current():
    assert api_table.main(["--check"]) == 0, "run: python scripts/api_table.py"


def test_every_public_argument_is_documented_with_a_source():
    for qualified, obj in api_table.public_objects():
        documented = api_table.arguments_help(obj.__doc__)
        parameters = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj).parameters
        missing = [p for p in parameters if p not in ("self", "cls", "name", "kwargs")
                   and p not in documented and f"**{p}" not in documented]
        assert not missing, f"{qualified}: Args lacks {missing}"
        assert api_table._source(qualified, obj), qualified


def test_table_has_one_row_per_public_object_with_its_defaults():
    table = api_table.compact_table().splitlines()
    assert len(table) == 2 + len(api_table.public_objects())
    assert "`beta_1=0.9`" in table[2] and "`epsilon=1e-06`" in table[2]  # LAMB: paper values
    assert "`form='classic'`" in table[3]

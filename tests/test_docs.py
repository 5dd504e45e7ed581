"""The documentation that is generated from the code is current."""

from pathlib import Path

from djdeploy.config import keys

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_doc_is_generated_from_the_keys_table():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert doc == keys.markdown(), ("docs/configuration.md is stale: run "
                                    "`.venv/bin/python -m djdeploy.config.keys > docs/configuration.md`")


def test_every_key_has_its_documentation_and_every_hint_a_key():
    assert all(key.doc.strip() for key in keys.KEYS.values())
    assert set(keys.HINTS) <= set(keys.KEYS)
    for name in keys.KEYS:  # each key a row of the table
        assert f"| `{name}` |" in keys.markdown() or f"| `{name}` (*app*) |" in keys.markdown()

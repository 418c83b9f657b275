"""Settings come from GATEHOUSE_* variables, typed, and fail fast naming the variable."""

from __future__ import annotations

import msgspec
import pytest

from shared.settings import Settings, SettingsError, documented_settings, env_name, load_settings


def test_defaults_without_any_variable() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.stream_name == "GATEHOUSE"
    assert settings.http_port == 8080


def test_variables_are_read_and_converted() -> None:
    settings = load_settings(
        {
            "GATEHOUSE_HTTP_PORT": "9090",
            "GATEHOUSE_RPC_TIMEOUT_SECONDS": "2.5",
            "GATEHOUSE_NATS_URL": "nats://nats:4222",
            "GATEHOUSE_LOG_FORMAT": "console",
            "UNRELATED": "ignored",
        }
    )
    assert settings.http_port == 9090
    assert settings.rpc_timeout_seconds == 2.5
    assert settings.nats_url == "nats://nats:4222"
    assert settings.log_format == "console"


def test_overrides_win_over_the_environment() -> None:
    settings = load_settings({"GATEHOUSE_HTTP_PORT": "9090"}, http_port=0, service="audit")
    assert settings.http_port == 0
    assert settings.service == "audit"


def test_the_process_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEHOUSE_MAX_READY_LAG", "17")
    assert load_settings().max_ready_lag == 17


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEHOUSE_HTTP_PORT", "eighty"),
        ("GATEHOUSE_HTTP_PORT", "70000"),
        ("GATEHOUSE_RPC_TIMEOUT_SECONDS", "0"),
        ("GATEHOUSE_PROJECTION_BATCH_SIZE", "0"),
        ("GATEHOUSE_LOG_FORMAT", "xml"),
        ("GATEHOUSE_STREAM_REPLICAS", "2.5"),
    ],
)
def test_a_bad_value_fails_naming_the_variable(variable: str, value: str) -> None:
    # The variable is ours to name; what is wrong with it is msgspec's wording, not asserted.
    with pytest.raises(SettingsError) as raised:
        load_settings({variable: value})
    message = str(raised.value)
    assert message.startswith(f"{variable}: ")
    assert len(message) > len(f"{variable}: ")


def test_a_pool_whose_minimum_exceeds_its_maximum_is_refused() -> None:
    with pytest.raises(SettingsError, match="db_pool_min"):
        load_settings({"GATEHOUSE_DB_POOL_MIN": "20", "GATEHOUSE_DB_POOL_MAX": "5"})


def test_with_changes_fields_and_leaves_the_original_alone() -> None:
    base = load_settings({})
    changed = base.with_(service="scanner", http_port=0)
    assert (changed.service, changed.http_port) == ("scanner", 0)
    assert (base.service, base.http_port) == ("gateway", 8080)


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [({"http_port": 70000}, "GATEHOUSE_HTTP_PORT"), ({"db_pool_min": 50}, "db_pool_min")],
)
def test_with_checks_changes_like_the_environment(changes: dict[str, int], complaint: str) -> None:
    with pytest.raises(SettingsError, match=complaint):
        load_settings({}).with_(**changes)


def test_every_field_is_documented_with_its_variable_type_and_default() -> None:
    documented = {name: (type_name, default) for name, type_name, default in documented_settings()}
    fields = msgspec.structs.fields(Settings)
    assert set(documented) == {env_name(f.name) for f in fields}
    assert documented["GATEHOUSE_HTTP_PORT"] == ("int", 8080)
    assert documented["GATEHOUSE_RPC_TIMEOUT_SECONDS"] == ("float", 5.0)
    assert documented["GATEHOUSE_LOG_FORMAT"] == ("'json' | 'console'", "json")
    assert all("Annotated" not in type_name for type_name, _ in documented.values())


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("GATEHOUSE_BANNER", "x" * 501, "GATEHOUSE_BANNER"),
        ("GATEHOUSE_BANNER", "<script>alert(1)</script>", "plain text"),
        ("GATEHOUSE_BANNER", "two\nlines", "plain text"),
        ("GATEHOUSE_BANNER", "bell\x07", "plain text"),
        ("GATEHOUSE_HELP_URL", "javascript:alert(1)", "http"),
        ("GATEHOUSE_HELP_URL", "https://help.example.com/a b", "http"),
        ("GATEHOUSE_HELP_URL", 'https://x.example/"><b>', "http"),
        ("GATEHOUSE_HELP_URL", "https://x.example/" + "a" * 2000, "GATEHOUSE_HELP_URL"),
    ],
)
def test_public_config_texts_are_checked_at_start(
    variable: str, value: str, complaint: str
) -> None:
    with pytest.raises(SettingsError, match=complaint):
        load_settings({variable: value})

"""What a record keeps of an input: secret fields masked, wherever the model declares them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, Secret, SecretBytes, SecretStr, ValidationError, field_serializer

from orchestration.engine.inputs import REDACTED, parse_input, redact


class Inner(BaseModel):
    name: str
    key: SecretStr


class Declared(BaseModel):
    user: str
    token: SecretStr
    pin: Secret[int] | None = None
    blob: SecretBytes | None = None
    aliased: SecretStr | None = Field(None, alias="apiKey")
    inner: Inner | None = None
    keys: list[SecretStr] = Field(default_factory=list)
    inners: list[Inner] = Field(default_factory=list)
    plain: dict[str, Any] = Field(default_factory=dict)


RAW = {
    "user": "ada",
    "token": "t0k",
    "pin": 1234,
    "blob": "b",
    "apiKey": "k",
    "inner": {"name": "n", "key": "s3cret"},
    "keys": ["a", "b"],
    "inners": [{"name": "m", "key": "x"}],
    "plain": {"token": "not declared secret"},
}


def test_a_valid_input_is_the_model_as_json_with_secrets_masked() -> None:
    kept, parsed = parse_input(Declared, RAW)
    assert isinstance(parsed, Declared)
    assert parsed.token.get_secret_value() == "t0k"  # the agent gets the value
    assert kept == {
        "user": "ada",
        "token": REDACTED,
        "pin": REDACTED,
        "blob": REDACTED,
        "aliased": REDACTED,
        "inner": {"name": "n", "key": REDACTED},
        "keys": [REDACTED, REDACTED],
        "inners": [{"name": "m", "key": REDACTED}],
        "plain": {"token": "not declared secret"},
    }


def test_an_input_that_does_not_fit_is_kept_as_given_with_secrets_masked() -> None:
    kept, parsed = parse_input(Declared, {**RAW, "user": None, "extra": "kept"})
    assert isinstance(parsed, ValidationError)
    assert kept == {
        **RAW,
        "user": None,
        "extra": "kept",
        "token": REDACTED,
        "pin": REDACTED,
        "blob": REDACTED,
        "apiKey": REDACTED,
        "inner": {"name": "n", "key": REDACTED},
        "keys": REDACTED,  # a container that can hold a secret is masked whole
        "inners": REDACTED,
    }


def test_absent_and_null_secrets_and_inputs_that_are_no_object_stay_as_they_are() -> None:
    assert redact(Declared, {"token": None, "user": 5}) == {"token": None, "user": 5}
    assert redact(Declared, ["t0k"]) == ["t0k"]
    assert redact(Declared, {"inner": "not an object"}) == {"inner": REDACTED}


class Unwritable(BaseModel):
    token: SecretStr
    when: str

    @field_serializer("when")
    def _fails(self, value: str) -> str:
        raise ValueError("cannot write this")


def test_a_model_that_cannot_be_written_is_kept_as_resolved_with_secrets_masked() -> None:
    kept, parsed = parse_input(Unwritable, {"token": "t0k", "when": "now"})
    assert isinstance(parsed, Unwritable)
    assert kept == {"token": REDACTED, "when": "now"}

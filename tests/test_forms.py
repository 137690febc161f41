"""Forms: the field rules (pure), the mock's forms as the provider documents them, the
core's submit-then-enqueue, and the CLI paths."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kiosk.api import QmsClient
from kiosk.core import admin
from kiosk.core.runtime import Runtime, open_runtime
from kiosk.errors import BadRequest, Unprocessable
from kiosk.mock import MockServer, MockState, ScriptedFault, create_app
from kiosk.tickets.formflow import submit_and_issue
from kiosk.view.forms import (
    HONEYPOT,
    FieldDef,
    FormAnswer,
    FormDef,
    Problem,
    check_field,
    keep_values,
    problem_from_api,
    submission_values,
    values_by_id,
)
from kiosk.view.outcomes import IssueResult, Outcome

from .conftest import ATENCION, BRANCH, CUENTAS, FAST_RETRY, KEY, REPO, SEGUROS, make_config

PROVIDER_EXAMPLE: dict[str, Any] = {"form": [  # the provider's page, verbatim in substance
    {"_id": "60f652f1cfa34fc3157ef5c6", "type": "text", "name": "firstname", "label": "Nombre",
     "properties": {"required": True, "placeholder": "Ingrese su nombre..."}, "options": [],
     "hint": ""},
    {"_id": "61d25bc9294d18677ce6ef6f", "type": "text", "label": "Apellido",
     "properties": {"placeholder": "Ingrese su apellido", "maxlength": "50"},
     "name": "lastname", "hint": "", "options": []},
    {"_id": "60f652f1cfa34fc3157ef5c7", "type": "email", "name": "email",
     "label": "Correo electrónico", "properties": {"required": True}, "options": [], "hint": ""},
    {"_id": "60f654b4cfa34fc3157ef5cd", "type": "url", "label": "Sitio web",
     "properties": {"placeholder": "Ingrese un enlace con http://", "required": True},
     "name": "website", "hint": "Debe anteponer http:// o https://", "options": []},
    {"_id": "60f654b4cfa34fc3157ef5ce", "type": "textarea", "label": "Mensaje",
     "properties": {"maxlength": "250"}, "name": "message", "hint": "", "options": []},
], "siteKey": "X", "resource": "https://challenges.cloudflare.com/turnstile/v0/api.js",
    "provider": "turnstile"}


def example() -> FormDef:
    return FormDef.from_api("q1", PROVIDER_EXAMPLE)


# ----------------------------------------------------------------------- the rules (pure)


def test_the_providers_example_parses() -> None:
    form = example()
    assert [f.name for f in form.shown] == ["firstname", "lastname", "email", "website",
                                            "message"]
    last = form.field("lastname")
    assert last is not None and last.maxlength == 50 and not last.required  # "50": a string
    web = form.field("website")
    assert web is not None and web.hint_text("es") == "Debe anteponer http:// o https://"
    assert FormDef.from_json(json.loads(json.dumps(form.to_json()))) == form  # over the link


@pytest.mark.parametrize(("name", "value", "rule"), [
    ("firstname", "", "required"),
    ("firstname", "   ", "required"),
    ("firstname", 5, "type"),                      # level 1: the value's type
    ("email", "ana@", "email"),                    # level 2: the field's rule
    ("email", "ana@example", "email"),
    ("email", "ana@example.com", None),
    ("website", "example.com", "url"),
    ("website", "https://example.com/x", None),
    ("lastname", "x" * 51, "maxlength"),           # level 3: limits
    ("lastname", "x" * 50, None),
    ("lastname", "", None),                        # optional
    ("message", "x" * 251, "maxlength"),
])
def test_three_levels(name: str, value: Any, rule: str | None) -> None:
    fd = example().field(name)
    assert fd is not None
    problem = check_field(fd, value)
    assert (problem.rule if problem else None) == rule


def test_numbers_and_choices() -> None:
    age = FieldDef.from_api({"_id": "a", "type": "number", "properties": {"min": "18",
                                                                         "max": 120}})
    assert [getattr(check_field(age, v), "rule", None) for v in ("17", "18", "121", "x", "40")
            ] == ["min", None, "max", "type", None]
    one = FieldDef.from_api({"_id": "s", "type": "select", "properties": {"required": True},
                             "options": [{"value": "auto", "label": {"es": "Auto",
                                                                     "en": "Car"}}, "hogar"]})
    assert one.kind == "choice" and not one.multiple and one.options[0].text("en") == "Car"
    assert check_field(one, "auto") is None
    assert getattr(check_field(one, "boat"), "rule", None) == "option"
    assert getattr(check_field(one, ["auto", "hogar"]), "rule", None) == "option"
    many = FieldDef.from_api({"_id": "m", "type": "checkbox", "options": ["a", "b", "c"],
                              "properties": {"max": 2}})
    assert many.multiple and check_field(many, ["a", "b"]) is None
    assert getattr(check_field(many, ["a", "b", "c"]), "rule", None) == "max"


def test_labels_in_the_customers_language_where_given() -> None:
    fd = FieldDef.from_api({"_id": "x", "type": "text", "label": {"es": "Nombre", "en": "Name"}})
    assert (fd.title("es"), fd.title("en"), fd.title("pt")) == ("Nombre", "Name", "Nombre")
    plain = FieldDef.from_api({"_id": "y", "type": "text", "label": "Nombre"})
    assert plain.title("en") == "Nombre"  # the provider's one label, whatever the language


def test_submission_carries_the_honeypot_empty_and_every_field() -> None:
    form = example()
    values = {"60f652f1cfa34fc3157ef5c6": " Ana ", "60f652f1cfa34fc3157ef5c7": "a@b.cl"}
    sent = submission_values(form, values)
    assert sent[0] == {"_id": HONEYPOT, "value": ""}
    assert {"_id": "60f652f1cfa34fc3157ef5c6", "value": "Ana"} in sent
    assert len(sent) == 1 + len(form.fields)


def test_values_kept_where_they_still_fit() -> None:
    old = example()
    raw = json.loads(json.dumps(PROVIDER_EXAMPLE))
    raw["form"][1]["properties"]["maxlength"] = "5"   # lastname now shorter
    raw["form"][2]["_id"] = "new-email-id"            # email field replaced (same name)
    new = FormDef.from_api("q1", raw)
    assert new.version != old.version
    typed = {"60f652f1cfa34fc3157ef5c6": "Ana", "61d25bc9294d18677ce6ef6f": "Pérez Soto",
             "60f652f1cfa34fc3157ef5c7": "ana@example.com"}
    kept = keep_values(new, {**typed, "email": typed["60f652f1cfa34fc3157ef5c7"]})
    assert kept == {"60f652f1cfa34fc3157ef5c6": "Ana", "new-email-id": "ana@example.com"}


@pytest.mark.parametrize(("message", "data", "field", "rule"), [
    ('The maximum of value is 10 for element "61d25bc9294d18677ce6ef6f".', None,
     "61d25bc9294d18677ce6ef6f", "maxlength"),
    ("Some element not as field, please check or try again",
     "Maybe the organization has changed the form and you're submit is not valid anymore.",
     "60f652f1cfa34fc3157ef5c6", "changed"),
    ('The value is not a valid email for element "60f652f1cfa34fc3157ef5c7".', None,
     "60f652f1cfa34fc3157ef5c7", "email"),
    ('The element "60f652f1cfa34fc3157ef5c6" is required.', None,
     "60f652f1cfa34fc3157ef5c6", "required"),
])
def test_the_providers_400_lands_on_its_field(message: str, data: Any, field: str,
                                              rule: str) -> None:
    p = problem_from_api(example(), message, data)
    assert (p.field_id, p.rule) == (field, rule)


@pytest.mark.parametrize("lang", ["es", "en", "pt"])
def test_every_rule_has_kind_words(lang: str) -> None:
    for rule in ("required", "type", "email", "url", "option", "maxlength", "min", "max",
                 "changed", "refused"):
        text = Problem("f", rule, 5).text(lang)
        assert text and "{" not in text


# ----------------------------------------------------------------------- the mock


@pytest.fixture
async def client(state: MockState) -> Any:
    c = QmsClient("http://mock.invalid", KEY, retry=FAST_RETRY,
                  transport=httpx.ASGITransport(app=create_app(state)))
    yield c
    await c.aclose()


async def test_mock_serves_the_providers_shape(client: QmsClient) -> None:
    async with httpx.AsyncClient(transport=client._http._transport,
                                 base_url="http://mock.invalid") as raw:
        r = await raw.get(f"/public/video-contact-center/forms/{SEGUROS}?version=base",
                          headers={"Authorization": f"Bearer {KEY}"})
    body = r.json()
    assert set(body) == {"form", "siteKey", "resource", "provider"}
    first = body["form"][0]
    assert set(first) == {"_id", "type", "name", "label", "properties", "options", "hint"}
    assert first["properties"]["maxlength"] == "50"  # a string, as the page shows


def mock_values(**over: Any) -> list[dict[str, Any]]:
    base = {"60f652f1cfa34fc3157ef5c6": "Ana", "60f652f1cfa34fc3157ef5c7": "ana@example.com",
            "60f652f1cfa34fc3157ef5c8": "auto", "60f652f1cfa34fc3157ef5c9": ""}
    base.update(over)
    return [{"_id": HONEYPOT, "value": ""}, *({"_id": k, "value": v} for k, v in base.items())]


@pytest.mark.parametrize(("values", "error", "message", "data"), [
    (mock_values()[1:], BadRequest, 'The element form "videsk_essential" is required, never '
     'delete.', None),
    ([{"_id": HONEYPOT, "value": "bot"}, *mock_values()[1:]], Unprocessable, "suspicious",
     {"extraData": "honeypot"}),
    (mock_values(**{"60f652f1cfa34fc3157ef5c7": "ana@"}), BadRequest,
     'The value is not a valid email for element "60f652f1cfa34fc3157ef5c7".', None),
    (mock_values(**{"60f652f1cfa34fc3157ef5c8": "barco"}), BadRequest, "valid option", None),
    (mock_values(**{"60f652f1cfa34fc3157ef5c6": 7}), BadRequest, "type is not valid", None),
    (mock_values(**{"60f652f1cfa34fc3157ef5c9": "x" * 251}), BadRequest,
     "maximum length of value is 250", None),
    (mock_values(**{"unknown": "x"}), BadRequest, "Some element not as field",
     "Maybe the organization has changed the form and you're submit is not valid anymore."),
])
async def test_mock_checks_like_the_provider(client: QmsClient, values: list[dict[str, Any]],
                                             error: type[Exception], message: str,
                                             data: Any) -> None:
    with pytest.raises(error) as info:  # type: ignore[call-overload]
        await client.submit_form(SEGUROS, "pre-call", values)
    assert message in info.value.api_message
    assert info.value.body.get("data") == data


async def test_mock_form_changes_version(client: QmsClient, state: MockState) -> None:
    before = FormDef.from_api(SEGUROS, (await client.get_form(SEGUROS)).model_dump(by_alias=True))
    state.change_form(SEGUROS)
    after = FormDef.from_api(SEGUROS, (await client.get_form(SEGUROS)).model_dump(by_alias=True))
    assert before.version != after.version
    assert [f.name for f in after.shown] == ["firstname", "email", "age"]
    with pytest.raises(BadRequest, match="not as field"):  # made for the old version
        await client.submit_form(SEGUROS, "pre-call", mock_values())


# ----------------------------------------------------------------------- the core


@pytest.fixture
async def rt(tmp_path: Path, state: MockState) -> Any:
    runtime = open_runtime(make_config(tmp_path), KEY, retry=FAST_RETRY,
                           transport=httpx.ASGITransport(app=create_app(state)))
    await runtime.monitor.poll_once()
    yield runtime
    await runtime.aclose()


TYPED = {"firstname": "Ana Pérez", "email": "ana.perez@example.com", "insurance": "hogar"}


async def by_id(rt: Runtime, typed: dict[str, Any]) -> dict[str, Any]:
    assert rt.forms is not None
    form = await rt.forms.fetch(SEGUROS)
    assert form is not None
    return values_by_id(form, typed)[0]


async def test_forms_are_learned_ahead_and_mark_the_cards(rt: Runtime) -> None:
    assert rt.forms is not None
    await rt.forms.refresh()
    assert rt.forms.needs(SEGUROS) and not rt.forms.needs(ATENCION)
    marks = {v.id: v.needs_form for v in rt.service.views("es")}
    assert marks == {ATENCION: False, CUENTAS: False, "652a1ae848880e168884e4a1": False,
                     SEGUROS: True}


async def test_submit_then_enqueue_with_the_submission(rt: Runtime, state: MockState,
                                                       caplog: pytest.LogCaptureFixture,
                                                       tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    assert rt.forms is not None
    r = await submit_and_issue(rt.service, rt.forms, SEGUROS, await by_id(rt, TYPED),
                               language="es")
    assert isinstance(r, IssueResult) and r.outcome is Outcome.ISSUED and r.printed
    post = state.form_posts[-1]
    assert post["type"] == "pre-call" and post["segment"] == SEGUROS
    assert {"_id": "60f652f1cfa34fc3157ef5c7", "value": "ana.perez@example.com"} in post["values"]
    assert state.tickets[-1].form == post["submission"]  # the enqueue carried its id
    # what the customer typed went to Videsk only: not to the log, journal or paper
    stored = (tmp_path / "data" / "journal.sqlite3").read_bytes()
    paper = (tmp_path / "printer.bin").read_bytes()
    for value in ("Ana Pérez", "ana.perez@example.com"):
        assert value not in caplog.text
        assert value.encode() not in stored and value.encode() not in paper
    assert "Forms: 1 sent" in admin.summary(rt, await admin.printer_status(rt))


async def test_local_refusal_sends_nothing(rt: Runtime, state: MockState) -> None:
    assert rt.forms is not None
    before = len(state.requests)
    await rt.forms.fetch(SEGUROS)
    r = await submit_and_issue(rt.service, rt.forms, SEGUROS,
                               await by_id(rt, {**TYPED, "email": "ana@"}), language="es")
    assert isinstance(r, FormAnswer) and not r.sent
    assert [(p.rule) for p in r.problems.values()] == ["email"]
    assert [m for m, path, _ in state.requests[before:] if m == "POST"] == []


async def test_provider_400_returns_the_form_with_the_reason(rt: Runtime,
                                                             state: MockState) -> None:
    assert rt.forms is not None
    values = await by_id(rt, TYPED)
    # the account's admin shortens the name field after the kiosk fetched the form
    q = state.queue_anywhere(SEGUROS)
    assert q is not None and q.form is not None
    q.form[0].maxlength = 5
    r = await submit_and_issue(rt.service, rt.forms, SEGUROS, values, language="es")
    assert isinstance(r, FormAnswer) and r.sent
    assert r.form is not None and r.form.field("firstname").maxlength == 5  # type: ignore[union-attr]
    assert [(k, p.rule) for k, p in r.problems.items()] == [
        ("60f652f1cfa34fc3157ef5c6", "changed")]  # refetched: its version moved
    assert state.tickets == []


async def test_provider_400_on_a_field(rt: Runtime, state: MockState) -> None:
    assert rt.forms is not None
    values = await by_id(rt, TYPED)
    state.push_faults(ScriptedFault(on="submit", answer=400))
    r = await submit_and_issue(rt.service, rt.forms, SEGUROS, values, language="es")
    assert isinstance(r, FormAnswer) and r.sent  # "The maximum of value is 10 for element"
    assert [(k, p.rule, p.limit) for k, p in r.problems.items()] == [
        ("60f652f1cfa34fc3157ef5c6", "maxlength", 10)]
    assert state.tickets == []


async def test_form_changed_since_fetched(rt: Runtime, state: MockState) -> None:
    assert rt.forms is not None
    values = await by_id(rt, TYPED)
    state.change_form(SEGUROS)
    r = await submit_and_issue(rt.service, rt.forms, SEGUROS, values, language="es")
    assert isinstance(r, FormAnswer) and r.sent and r.form is not None
    assert [f.name for f in r.form.shown] == ["firstname", "email", "age"]
    assert [p.rule for p in r.problems.values()] == ["changed"]
    kept = keep_values(r.form, {**values, **{"firstname": "Ana Pérez",
                                             "email": "ana.perez@example.com"}})
    r2 = await submit_and_issue(rt.service, rt.forms, SEGUROS,
                                {**kept, "61d25bc9294d18677ce6ef71": "40"}, language="es")
    assert isinstance(r2, IssueResult) and r2.outcome is Outcome.ISSUED


async def test_no_agents_after_the_form_offers_alternatives(rt: Runtime,
                                                            state: MockState) -> None:
    assert rt.forms is not None
    state.set_agents(SEGUROS, 0)
    r = await submit_and_issue(rt.service, rt.forms, SEGUROS, await by_id(rt, TYPED),
                               language="es")
    assert isinstance(r, IssueResult) and r.outcome is Outcome.NO_AGENTS
    assert r.alternatives and all(not a.needs_form for a in r.alternatives)


# ----------------------------------------------------------------------- the CLI


@pytest.fixture
def cfg_file(tmp_path: Path, server: MockServer) -> Path:
    cfg = make_config(tmp_path, api={"base_url": server.url, "timeout_s": 2})
    path = tmp_path / "kiosk.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    return path


def kiosk(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiosk", *args], capture_output=True,
                          text=True, env=env, timeout=60, cwd=REPO)


def test_cli_form_lists_the_fields(cfg_file: Path, cli_env: dict[str, str]) -> None:
    p = kiosk("--config", str(cfg_file), "form", SEGUROS, "--json", "--lang", "en", env=cli_env)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [(f["name"], f["type"], f["required"]) for f in out["fields"]] == [
        ("firstname", "text", True), ("email", "email", True), ("insurance", "select", True),
        ("message", "textarea", False)]
    assert out["fields"][2]["options"][0] == {"value": "auto", "label": "Car"}
    p = kiosk("--config", str(cfg_file), "form", SEGUROS, env=cli_env)
    assert p.returncode == 0 and "email" in p.stdout and "one of: auto, hogar, vida" in p.stdout
    p = kiosk("--config", str(cfg_file), "form", ATENCION, env=cli_env)
    assert p.returncode == 0 and "needs no form" in p.stdout


def test_cli_ticket_with_a_form(cfg_file: Path, cli_env: dict[str, str], state: MockState,
                                tmp_path: Path) -> None:
    form = tmp_path / "form.json"
    form.write_text(json.dumps({**TYPED, "60f652f1cfa34fc3157ef5c9": "Llamar tarde"}))
    p = kiosk("--config", str(cfg_file), "ticket", SEGUROS, "--form-json", str(form), "--json",
              env=cli_env)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["outcome"] == "issued" and out["ticketId"] == "D-001"
    assert state.tickets[-1].form == state.form_posts[-1]["submission"]
    assert "Ana Pérez" not in p.stdout + p.stderr


@pytest.mark.parametrize(("typed", "expect"), [
    ({**TYPED, "email": "ana@"}, 'field "email": email'),
    ({"firstname": "Ana"}, 'field "email": required'),
    ({**TYPED, "colour": "red"}, 'field "colour": not in the form'),
    ({**TYPED, "insurance": "barco"}, 'field "insurance": option'),
])
def test_cli_local_refusal_exits_2_and_sends_nothing(cfg_file: Path, cli_env: dict[str, str],
                                                     state: MockState, tmp_path: Path,
                                                     typed: dict[str, Any], expect: str) -> None:
    form = tmp_path / "form.json"
    form.write_text(json.dumps(typed))
    p = kiosk("--config", str(cfg_file), "ticket", SEGUROS, "--form-json", str(form),
              env=cli_env)
    assert p.returncode == 2, p.stderr
    assert expect in p.stderr and "nothing" not in p.stdout
    assert not any(m == "POST" for m, _, _ in state.requests)
    assert "ana@" not in p.stderr  # the field and the rule, never the value


def test_cli_bad_form_file_exits_2(cfg_file: Path, cli_env: dict[str, str],
                                   tmp_path: Path) -> None:
    form = tmp_path / "form.json"
    form.write_text("[1, 2]")
    p = kiosk("--config", str(cfg_file), "ticket", SEGUROS, "--form-json", str(form),
              env=cli_env)
    assert p.returncode == 2 and "JSON object" in p.stderr


def test_cli_provider_refusal_exits_7(cfg_file: Path, cli_env: dict[str, str],
                                      state: MockState, tmp_path: Path) -> None:
    form = tmp_path / "form.json"
    form.write_text(json.dumps(TYPED))
    state.push_faults(ScriptedFault(on="submit", answer=400))
    p = kiosk("--config", str(cfg_file), "ticket", SEGUROS, "--form-json", str(form),
              env=cli_env)
    assert p.returncode == 7, p.stderr
    assert 'form refused by the API: field "firstname": maxlength (10)' in p.stderr
    assert state.tickets == [] and BRANCH


# ----------------------------------------------------------------------- the link


async def test_over_the_link_values_reach_videsk_only(rt: Runtime, state: MockState,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """The UI's side of the link: forms learned ahead, a submission, and its error paths,
    with every logger at DEBUG; what the customer typed appears in no log line."""
    import asyncio

    from kiosk.core.server import serve_in_process

    from .test_staff import raw
    caplog.set_level(logging.DEBUG)
    core, served = await serve_in_process(rt)
    try:
        for _ in range(200):  # the forms event, sent once the catalog has asked
            if core.forms.get(SEGUROS) is not None:
                break
            await asyncio.sleep(0.02)
        form = core.forms[SEGUROS]
        assert form is not None and core.forms[ATENCION] is None
        values = (await by_id(rt, TYPED))
        # refused here: the form comes back, nothing sent
        back = await core.submit_form(SEGUROS, {**values, form.shown[1].id: "ana.perez@"},
                                      language="es")
        assert isinstance(back, FormAnswer) and not back.sent
        # the API fails: no ticket, said kindly
        state.push_faults(ScriptedFault(on="submit", answer=503))
        failed = await core.submit_form(SEGUROS, values, language="es")
        assert isinstance(failed, IssueResult) and failed.outcome is Outcome.UNAVAILABLE
        # a request the core cannot read: answered with an error, its args unlogged
        with pytest.raises(Exception, match="values must be an object"):
            await raw(core, "submit_form", {"queue_id": SEGUROS, "language": "es",
                                            "values": ["Ana Pérez"]})
        ok = await core.submit_form(SEGUROS, values, language="es")
        assert isinstance(ok, IssueResult) and ok.outcome is Outcome.ISSUED
        assert ok.printing is not None and (await ok.printing)[0]
        assert state.tickets[-1].form == state.form_posts[-1]["submission"]
    finally:
        await core.aclose()
        await asyncio.wait_for(served, 10)
    for value in ("Ana Pérez", "ana.perez@example.com", "ana.perez@"):
        assert value not in caplog.text

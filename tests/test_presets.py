"""Presets: a person's own and the team's; who may manage which (checked in the core, the team's
audited); a new chat from a preset; and the UI module that draws them (AppTest). On SQLite and
PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from apptest import make_user, text_of
from streamlit.testing.v1 import AppTest

from byok_core import audit, presets, words
from byok_core import conversations as convs
from byok_core.adapters.base import ChatParams, Effort
from byok_core.audit import AuditAction
from byok_core.errors import NotFoundError, PermissionDenied, ValidationError
from byok_core.identity import Actor, Owner
from byok_core.models import Preset, table
from byok_core.presets import Settings
from byok_core.providers import Provider

REVIEW = Settings("You review code. Be brief.", ChatParams(0.2, 1200, None))


@pytest.fixture
def people(rt):
    ann, bob, boss = make_user(rt, "ann"), make_user(rt, "bob"), make_user(rt, "boss", admin=True)
    return Actor.of(ann), Actor.of(bob), Actor.of(boss)


def names(rt, actor) -> list[tuple[str, bool]]:
    return [(p.name, p.is_team) for p in presets.list_for(rt, actor)]


def test_members_see_the_teams_presets_and_their_own_never_anothers(rt, people):
    ann, bob, boss = people
    presets.create(rt, ann, Owner.user(ann.user_id), "Mine", Provider.OPENAI, "gpt-4o", REVIEW)
    presets.create(rt, bob, Owner.user(bob.user_id), "Bob's", Provider.ANTHROPIC, "claude-haiku-4-5")
    team = presets.create(rt, boss, Owner.team(), "Code review", Provider.GOOGLE, "gemini-2.5-pro", REVIEW)
    assert names(rt, ann) == [("Code review", True), ("Mine", False)]
    assert names(rt, bob) == [("Code review", True), ("Bob's", False)]
    assert names(rt, boss) == [("Code review", True)]  # an admin manages the team's, not others' own
    assert presets.get_for(rt, ann.user_id, team.id).settings == REVIEW
    assert team.model == "gemini-2.5-pro" and team.owner == Owner.team()


def test_a_member_manages_only_their_own_presets(rt, people):
    ann, bob, boss = people
    mine = presets.create(rt, ann, Owner.user(ann.user_id), "Mine", Provider.OPENAI, "gpt-4o")
    team = presets.create(rt, boss, Owner.team(), "Team one", Provider.OPENAI, "gpt-4o-mini")
    changed = presets.update(rt, ann, mine.id, "Mine, warmer", Provider.OPENAI, "gpt-4o",
                             Settings("", ChatParams(temperature=1.2)))
    assert (changed.name, changed.settings.params.temperature) == ("Mine, warmer", 1.2)
    with pytest.raises(PermissionDenied, match=r"^Only admins can manage team presets"):
        presets.create(rt, ann, Owner.team(), "Sneaky", Provider.OPENAI, "gpt-4o")
    with pytest.raises(PermissionDenied, match=r"^Only admins can manage team presets"):
        presets.update(rt, ann, team.id, "Sneaky", Provider.OPENAI, "gpt-4o")
    with pytest.raises(PermissionDenied, match=r"^Only admins can manage team presets"):
        presets.delete(rt, ann, team.id)
    with pytest.raises(PermissionDenied, match="only your own presets"):
        presets.create(rt, ann, Owner.user(bob.user_id), "For bob", Provider.OPENAI, "gpt-4o")
    for actor in (bob, boss):  # someone else's own preset looks missing, to an admin too
        with pytest.raises(NotFoundError, match="No such preset"):
            presets.delete(rt, actor, mine.id)
        with pytest.raises(NotFoundError, match="No such preset"):
            presets.update(rt, actor, mine.id, "Taken over", Provider.OPENAI, "gpt-4o")
        with pytest.raises(NotFoundError, match="No such preset"):
            convs.create_from_preset(rt, actor.user_id, mine.id)
    presets.delete(rt, ann, mine.id)
    assert names(rt, ann) == [("Team one", True)]


def test_team_presets_are_audited_and_own_ones_are_not(rt, people):
    ann, _, boss = people
    newest = audit.recent(rt, limit=1)[0].id
    presets.create(rt, ann, Owner.user(ann.user_id), "Private", Provider.OPENAI, "gpt-4o")
    team = presets.create(rt, boss, Owner.team(), "Code review", Provider.OPENAI, "gpt-4o", REVIEW)
    presets.update(rt, boss, team.id, "Code review", Provider.OPENAI, "gpt-4.1", REVIEW)
    presets.delete(rt, boss, team.id)
    events = [e for e in audit.recent(rt) if e.id > newest][::-1]
    assert [(e.actor, e.action) for e in events] == [("boss", AuditAction.PRESET_SET), ("boss", AuditAction.PRESET_SET),
                                                     ("boss", AuditAction.PRESET_DELETE)]
    assert [words.audit_sentence(e) for e in events] == [
        "boss saved the team preset Code review (OpenAI gpt-4o)",
        "boss saved the team preset Code review (OpenAI gpt-4.1)",
        "boss deleted the team preset Code review"]


def test_presets_are_checked(rt, people):
    ann, _, boss = people
    me = Owner.user(ann.user_id)
    presets.create(rt, ann, me, "Twice", Provider.OPENAI, "gpt-4o")
    with pytest.raises(ValidationError, match="already a preset named Twice"):
        presets.create(rt, ann, me, "Twice", Provider.OPENAI, "gpt-4o-mini")
    presets.create(rt, boss, Owner.team(), "Twice", Provider.OPENAI, "gpt-4o")  # another owner: fine
    with pytest.raises(ValidationError, match="needs a name"):
        presets.create(rt, ann, me, "   ", Provider.OPENAI, "gpt-4o")
    with pytest.raises(ValidationError, match="at most 80"):
        presets.create(rt, ann, me, "n" * 81, Provider.OPENAI, "gpt-4o")
    with pytest.raises(ValidationError, match="control character"):
        presets.create(rt, ann, me, "bad\x07name", Provider.OPENAI, "gpt-4o")
    with pytest.raises(ValidationError, match="Pick a model"):
        presets.create(rt, ann, me, "No model", Provider.OPENAI, "")
    with pytest.raises(ValidationError, match="search provider"):
        presets.create(rt, ann, me, "Search", Provider.BRAVE, "x")
    with pytest.raises(ValidationError, match="from 1 to 4,096 for Anthropic"):
        presets.create(rt, ann, me, "Big", Provider.ANTHROPIC, "claude-haiku-4-5",
                       Settings("", ChatParams(max_output_tokens=9000)))
    with pytest.raises(ValidationError, match="reasoning effort is low, medium or high"):
        presets.create(rt, ann, me, "Effort", Provider.OPENAI, "o3", Settings("", ChatParams(
            reasoning_effort="extreme")))  # type: ignore[arg-type]
    assert names(rt, ann) == [("Twice", True), ("Twice", False)]


def test_a_new_chat_from_a_preset_has_its_provider_model_and_settings(rt, people):
    ann, bob, boss = people
    settings = Settings("Answer as a pirate.", ChatParams(0.9, 800, Effort.MEDIUM))
    team = presets.create(rt, boss, Owner.team(), "Pirate", Provider.ANTHROPIC, "claude-sonnet-4-5", settings)
    chat = convs.create_from_preset(rt, ann.user_id, team.id)
    assert (chat.title, chat.provider, chat.model, chat.settings) == ("Pirate", Provider.ANTHROPIC,
                                                                      "claude-sonnet-4-5", settings)
    assert convs.get(rt, ann.user_id, chat.id).settings == settings
    presets.delete(rt, boss, team.id)  # the chat keeps its settings
    assert convs.get(rt, ann.user_id, chat.id).settings == settings
    with pytest.raises(NotFoundError):
        convs.get(rt, bob.user_id, chat.id)


def test_a_stored_effort_no_release_wrote_reads_as_the_default(rt, people):
    ann, _, _ = people
    made = presets.create(rt, ann, Owner.user(ann.user_id), "Odd", Provider.OPENAI, "o3",
                          Settings("", ChatParams(reasoning_effort=Effort.HIGH)))
    with rt.engine.begin() as conn:
        conn.execute(sa.update(table(Preset)).values(reasoning_effort="maximal"))
    assert presets.get_for(rt, ann.user_id, made.id).settings == Settings()


# --- the UI module (AppTest) --------------------------------------------------------------------


def _settings_script(rt, user, conversation_id, provider, model) -> None:
    from byok_core import conversations as convs
    from byok_ui import presets_view

    shown = convs.get(rt, user.id, conversation_id) if conversation_id is not None else None
    presets_view.conversation_settings(rt, user, shown, provider, model)
    presets_view.presets_manager(rt, user, conversation_id, provider, model)
    presets_view.new_chat_from_preset(rt, user)


def _app(rt, user, conversation_id, provider=Provider.OPENAI, model="o4-mini") -> AppTest:
    at = AppTest.from_function(_settings_script, args=(rt, user, conversation_id, provider, model),
                               default_timeout=20)
    at.session_state["presets_start_open"] = True  # the "New chat from preset" menu, opened
    at.session_state["chat_settings_open"] = True  # and "Settings of this chat"
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_settings_form_saves_through_the_core_and_says_what_the_model_takes(rt, app):
    ann = make_user(rt, "ann")
    conv = convs.create(rt, ann.id, "Mine", provider=Provider.OPENAI, model="o4-mini")
    at = _app(rt, ann, conv.id)
    assert "takes the reasoning effort as its reasoning effort (`reasoning_effort`)" in " ".join(
        c.value for c in at.caption)
    at.text_area[0].set_value("Be brief.")
    at.checkbox[0].check()
    at.slider[0].set_value(0.4)
    at.number_input[0].set_value(900)
    at.selectbox[0].set_value(Effort.HIGH)
    at.button(key=f"FormSubmitter:chat_settings_form_{conv.id}_openai-Save settings").click().run()
    assert not at.exception, at.exception
    assert convs.get(rt, ann.id, conv.id).settings == Settings("Be brief.", ChatParams(0.4, 900, Effort.HIGH))
    assert [text_of(s.value) for s in at.success] == ["Saved: the next reply uses these settings."]
    assert any("takes no temperature with these settings" in c.value for c in at.caption)

    at.text_area[0].set_value("bad\x00prompt")
    at.button(key=f"FormSubmitter:chat_settings_form_{conv.id}_openai-Save settings").click().run()
    assert any("control character" in text_of(e.value) for e in at.error)
    assert convs.get(rt, ann.id, conv.id).settings.system_prompt == "Be brief."  # unchanged


def test_a_member_saves_a_preset_starts_a_chat_from_it_and_deletes_it(rt, app):
    ann = make_user(rt, "ann")
    conv = convs.create(rt, ann.id, "Mine", provider=Provider.OPENAI, model="o4-mini",
                        settings=Settings("Be brief.", ChatParams(None, 900, Effort.LOW)))
    at = _app(rt, ann, conv.id)
    assert not at.radio  # a member cannot choose the team
    at.text_input(key="presets_new_name").set_value("Brief")
    at.button(key="FormSubmitter:presets_new_form-Save this chat as a preset").click().run()
    assert not at.exception, at.exception
    [made] = presets.list_for(rt, Actor.of(ann))
    assert (made.name, made.owner, made.model) == ("Brief", Owner.user(ann.id), "o4-mini")
    assert made.settings == Settings("Be brief.", ChatParams(None, 900, Effort.LOW))
    convs.set_settings(rt, ann.id, conv.id, Settings("Be briefer.", ChatParams(0.1, 700, None)))
    at.button(key=f"presets_update_{made.id}").click().run()  # the preset takes the chat's settings now
    made = presets.get_for(rt, ann.id, made.id)
    assert made.settings == Settings("Be briefer.", ChatParams(0.1, 700, None))
    at.button(key=f"presets_start_{made.id}").click().run()
    started = int(at.query_params["c"][0])
    assert convs.get(rt, ann.id, started).settings == made.settings and started != conv.id
    at.button(key=f"presets_delete_{made.id}").click().run()
    assert presets.list_for(rt, Actor.of(ann)) == []


def test_members_see_no_delete_on_team_presets_and_admins_save_team_ones(rt, app):
    ann, boss = make_user(rt, "ann"), make_user(rt, "boss", admin=True)
    conv = convs.create(rt, boss.id, "Boss's", provider=Provider.OPENAI, model="gpt-4o")
    at = _app(rt, boss, conv.id, model="gpt-4o")
    at.text_input(key="presets_new_name").set_value("Team default")
    at.radio(key="presets_new_for").set_value("The team")
    at.button(key="FormSubmitter:presets_new_form-Save this chat as a preset").click().run()
    [team] = presets.list_for(rt, Actor.of(ann))
    assert team.is_team and team.name == "Team default"
    at_member = _app(rt, ann, None)
    assert at_member.button(key=f"presets_start_{team.id}")  # members pick it
    with pytest.raises(KeyError):
        at_member.button(key=f"presets_delete_{team.id}")
    at.button(key=f"presets_delete_{team.id}").click().run()  # the admin deletes it
    assert presets.list_for(rt, Actor.of(ann)) == []


def test_a_chat_not_started_keeps_its_settings_for_its_first_message(rt, app):
    ann = make_user(rt, "ann")
    at = _app(rt, ann, None, model="gpt-4o")
    at.text_area[0].set_value("Draft prompt")
    at.button(key="FormSubmitter:chat_settings_form_new_openai-Save settings").click().run()
    assert not at.exception, at.exception
    assert at.session_state["chat_draft_settings"] == Settings("Draft prompt")
    assert any("Saved for this new chat" in text_of(s.value) for s in at.success)

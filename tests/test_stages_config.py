"""`[tool.tars-bot.stages]`: defaults, what a repository may set, and what it may not."""

from __future__ import annotations

import pytest

from tars_bot.config import config_at, parse_config
from tars_bot.errors import TarsError
from tars_bot.git import Repo
from tars_bot.stages.config import REQUIREMENTS


def stages(text: str):
    return parse_config(f"[tool.tars-bot.stages]\n{text}".encode()).stages


def test_the_defaults_require_everything():
    defaults = parse_config(None).stages
    assert (defaults.test.environment, defaults.test.ci) == ("tars-bot-test", "required")
    prod = defaults.prod
    assert prod.environment == "tars-bot-prod"
    assert prod.require == ["approved", "checks_green", "undiverged", "plan_digest", "not_self"]
    assert (prod.merge, prod.watch, prod.watch_seconds, prod.auto_revert) == (
        "queue-or-merge",
        "24h",
        86400,
        False,
    )


def test_a_repository_sets_its_stages(make_repo):
    repo = make_repo(
        {
            "pyproject.toml": """\
                [tool.tars-bot.stages]
                test = {environment = "ci-test", ci = "optional"}

                [tool.tars-bot.stages.prod]
                environment = "ci-prod"
                require = ["approved", "approved", "not_self"]
                merge = "squash"
                watch = "30m"
                auto_revert = true
                """
        }
    )
    found = config_at(Repo(repo)).stages
    assert (found.test.environment, found.test.ci) == ("ci-test", "optional")
    assert found.prod.require == ["approved", "not_self"]  # each once
    assert (found.prod.merge, found.prod.watch_seconds, found.prod.auto_revert) == (
        "squash",
        1800,
        True,
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('prod = {require = ["vibes"]}', "[tool.tars-bot].stages.prod.require"),
        ('prod = {watch = "soon"}', "'soon' is not a duration such as 30m, 24h or 14d"),
        ('prod = {merge = "octopus"}', "[tool.tars-bot].stages.prod.merge"),
        ('test = {ci = "maybe"}', "[tool.tars-bot].stages.test.ci"),
        ('prod = {approvers = ["@org/team"]}', "stages.prod.approvers: Extra inputs"),
    ],
)
def test_a_wrong_setting_is_one_readable_error(text, says):
    with pytest.raises(TarsError) as error:
        stages(text)
    assert says in str(error.value)


def test_an_improvement_may_only_tighten():
    prod = stages('prod = {require = ["approved"]}').prod
    assert prod.requirements(["undiverged", "approved"]) == ["approved", "undiverged"]
    assert prod.requirements([]) == ["approved"]  # asking for less keeps the repository's
    assert set(parse_config(None).stages.prod.requirements()) == set(REQUIREMENTS)

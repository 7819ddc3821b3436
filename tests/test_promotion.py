"""The prod promotion's rules (S4, S6, S9): each requirement met and unmet with its message,
the gate every merge path passes first, and the check that a merge landed the approved change.

Real parts only: an execution made by `tars-bot execute` in a clone of a bare origin, its
approval journaled as the gate engine records it, GitHub's answers from the fake server through
the GitHub client, and merges made in git (by the fake's merge button, or by hand)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tars_bot.errors import TarsError
from tars_bot.git import Repo
from tars_bot.github.client import GitHubClient
from tars_bot.models import Decision, Execution, Gate
from tars_bot.records import journal
from tars_bot.stages import promotion
from tars_bot.stages.ci import CIReport
from tars_bot.stages.requirements import Finding, Promotion, evaluate
from tests.fake_checks import add_check_run
from tests.fake_github import FakeGitHub
from tests.fake_github import Repo as GitHubRepo
from tests.helpers import add_improvement, commit_files, git
from tests.test_output import conforms

B_TXT = "beta\n1\n2\n3\n4\n"
FILES = {"a.txt": "alpha\n", "b.txt": B_TXT, "other.txt": "other\n"}
STEPS = """\
    title: two files
    steps:
      - {name: A, edit: {path: a.txt, search: alpha, replace: ALPHA}}
      - {name: B, edit: {path: b.txt, search: beta, replace: BETA}}
    """
GREEN = [CIReport("check_run", "tests", "green", "success")]


@dataclass
class World:
    work: Path  # the clone tars-bot executed in
    origin: Path  # the bare repository GitHub holds
    execution_id: str
    github: GitHubRepo

    @property
    def repo(self) -> Repo:
        return Repo(self.work)

    @property
    def execution(self) -> Execution:
        return journal.load(self.repo, self.execution_id)

    @property
    def head(self) -> str:
        head = self.execution.head_commit
        assert head is not None
        return head

    def base_tip(self) -> str:
        git(self.work, "fetch", "-q", "origin")
        return git(self.work, "rev-parse", "origin/main")

    def push_main(self, files: dict[str, str], message: str) -> str:
        clone = self.origin.parent / f"clone-{message.replace(' ', '-')}"
        git(self.origin.parent, "clone", "-q", str(self.origin), str(clone))
        commit_files(clone, files, message)
        git(clone, "push", "-q", "origin", "HEAD:main")
        return git(clone, "rev-parse", "HEAD")


@pytest.fixture
def world(tmp_path, cli, fake_github: FakeGitHub) -> World:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(origin), str(work))
    commit_files(work, FILES, "initial")
    add_improvement(work, textwrap.dedent(STEPS))
    commit_files(work, {}, "improvement")
    git(work, "push", "-q", "origin", "HEAD:main")
    result = cli("execute", "--repo", work, "--improvement-id", "imp")
    assert result.code == 0, result.err + result.out
    [execution] = journal.history(Repo(work), 1)
    git(work, "push", "-q", "origin", "tars-bot/imp")
    github = fake_github.add_repo("octo/app", clone_url=str(origin))
    github.add_collaborator("writer", "write")
    github.add_collaborator("maintainer", "maintain")
    github.add_collaborator("reader", "read")
    return World(work, origin, execution.id, github)


@pytest.fixture
def client(fake_github: FakeGitHub, world: World):
    env = {
        "GITHUB_API_URL": fake_github.url,
        "GITHUB_REPOSITORY": "octo/app",
        "GITHUB_TOKEN": fake_github.token,
    }
    with GitHubClient.from_env(env, sleep=lambda _: None, pace=False) as made:
        yield made


def approve(
    world: World,
    by: str = "writer",
    permission: str | None = "write",
    commit: str | None = None,
    digest: str | None = None,
    verdict: str = "approve",
) -> None:
    """The promotion gate and its decision, journaled as the gate engine writes them."""
    execution, plan = world.execution, journal.load_plan(world.repo, world.execution_id)
    head = world.head
    decision = Decision(
        verdict=verdict, by=by, permission=permission, via="comment", comment_id=7,
        at=journal.now(), commit=commit or head,
    )  # fmt: skip
    gate = Gate(
        id="promotion", kind="promotion", step=len(execution.steps), commit=head,
        tree=world.repo.tree_of(head), plan_digest=digest or plan.digest,
        requested_at=journal.now(), expires_at=journal.now(),
        status="approved" if verdict == "approve" else "rejected", decision=decision,
    )  # fmt: skip
    journal.Record.resume(world.repo, world.execution_id).update(gates=[gate])


def judged(
    world: World,
    name: str,
    *,
    requester: str | None = "alice",
    ci: list[CIReport] | None = None,
    base_tip: str | None = None,
) -> Finding:
    promotion_ = Promotion(
        world.execution,
        journal.load_plan(world.repo, world.execution_id),
        base_tip or world.base_tip(),
        requester,
        GREEN if ci is None else ci,
    )
    [finding] = evaluate(world.repo, promotion_, [name])  # type: ignore[list-item]
    return finding


# -- approved ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("by", "permission"), [("writer", "write"), ("maintainer", "maintain")])
def test_approved_by_a_writer_is_met(world, by, permission):
    approve(world, by=by, permission=permission)
    finding = judged(world, "approved")
    assert finding.met, finding
    assert f"approved by {by} ({permission}) on {world.head[:10]}" in finding.why


def test_approved_without_a_recorded_approval_is_unmet(world):
    finding = judged(world, "approved")
    assert not finding.met
    assert str(finding) == "approved: no approval of the promotion is recorded in the journal"


def test_an_approval_by_a_reader_does_not_count(world):
    approve(world, by="reader", permission="read")
    finding = judged(world, "approved")
    assert not finding.met
    assert "reader approved with read permission; only an approval by someone with write" in (
        finding.why
    )


def test_an_approval_of_another_commit_does_not_count(world):
    approve(world, commit=world.execution.base_commit)
    finding = judged(world, "approved")
    assert not finding.met
    assert f"names {world.execution.base_commit[:10]}, but the head is {world.head[:10]}" in (
        finding.why
    )


def test_a_rejection_is_not_an_approval(world):
    approve(world, verdict="reject")
    finding = judged(world, "approved")
    assert (finding.met, finding.why) == (False, "the promotion gate is rejected (by writer)")


# -- not_self ------------------------------------------------------------------------------------
def test_not_self_is_met_when_someone_else_approves(world):
    approve(world, by="writer")
    finding = judged(world, "not_self", requester="alice")
    assert finding.met
    assert finding.why == "approved by writer, not by the requester alice"


def test_not_self_is_unmet_when_the_requester_approves(world):
    approve(world, by="writer")
    finding = judged(world, "not_self", requester="Writer")  # logins ignore case
    assert not finding.met
    assert str(finding) == "not_self: writer asked for this execution and cannot approve it too"


def test_not_self_reads_the_requester_from_the_journal(world):
    """`execute` records who started it (TARS_BOT_USER, or the login name)."""
    requested_by = world.execution.requested_by
    assert requested_by
    approve(world, by=requested_by)
    finding = judged(world, "not_self", requester=None)
    assert not finding.met
    assert f"{requested_by} asked for this execution" in finding.why


def test_not_self_is_unmet_when_the_requester_is_unknown(world):
    approve(world)
    old_record = world.execution.model_copy(update={"requested_by": None})  # before it was kept
    plan = journal.load_plan(world.repo, world.execution_id)
    promotion_ = Promotion(old_record, plan, world.base_tip(), None, GREEN)
    [finding] = evaluate(world.repo, promotion_, ["not_self"])
    assert not finding.met
    assert "requester is not known" in finding.why


# -- checks_green --------------------------------------------------------------------------------
def test_checks_green_on_the_head_commit(world, client):
    world.github.add_status(world.head, "ci/lint", "pending")
    world.github.add_status(world.head, "ci/lint", "success")  # the latest per context counts
    add_check_run(world.github, world.head, "tests")
    add_check_run(world.github, world.head, "tars-bot / gate", conclusion="action_required")
    add_check_run(world.github, world.execution.base_commit, "tests", conclusion="failure")
    finding = judged(world, "checks_green", ci=client.commit_ci(world.head))
    assert finding.met, finding
    assert finding.why == f"CI passed on {world.head[:10]} (2 checks)"


def test_checks_green_is_unmet_on_a_failure(world, client):
    add_check_run(world.github, world.head, "tests", conclusion="failure")
    finding = judged(world, "checks_green", ci=client.commit_ci(world.head))
    assert not finding.met
    assert str(finding) == f"checks_green: CI failed on {world.head[:10]}: tests (failure)"


def test_a_failing_status_past_the_first_page_is_seen(world, client):
    for n in range(120):
        world.github.add_status(world.head, f"ci/{n:03}", "success")
    world.github.add_status(world.head, "ci/late", "error")
    add_check_run(world.github, world.head, "tests")
    finding = judged(world, "checks_green", ci=client.commit_ci(world.head))
    assert not finding.met
    assert "ci/late (error)" in finding.why


def test_pending_checks_are_not_green_and_say_so(world, client):
    add_check_run(world.github, world.head, "tests", status="in_progress", conclusion=None)
    finding = judged(world, "checks_green", ci=client.commit_ci(world.head))
    assert not finding.met
    assert finding.why == f"CI is still running on {world.head[:10]}: tests (in_progress)"


def test_no_ci_reported_is_not_green(world, client):
    add_check_run(world.github, world.head, "tars-bot / validation")  # ours: not the CI
    finding = judged(world, "checks_green", ci=client.commit_ci(world.head))
    assert (finding.met, finding.why) == (False, f"no CI has reported on {world.head[:10]} yet")


# -- undiverged ----------------------------------------------------------------------------------
def test_undiverged_when_the_base_has_not_moved(world):
    finding = judged(world, "undiverged")
    assert finding.met
    assert finding.why == f"the base has not moved since {world.execution.base_commit[:10]}"


def test_base_changes_elsewhere_are_not_divergence(world):
    world.push_main({"other.txt": "someone else's work\n", "new/x.txt": "x\n"}, "elsewhere")
    finding = judged(world, "undiverged")
    assert finding.met, finding
    assert finding.why.endswith("changing 2 files, none of this execution's")


def test_base_changes_to_the_executions_files_are_divergence(world):
    tip = world.push_main({"b.txt": "beta, edited on main\n", "other.txt": "o\n"}, "overlap")
    finding = judged(world, "undiverged")
    assert not finding.met
    base = world.execution.base_commit
    assert str(finding) == (
        f"undiverged: the base moved {base[:10]} → {tip[:10]} and changed b.txt, which this "
        "execution changes too: execute it again on the new base"
    )


def test_an_unknown_base_tip_is_unmet(world):
    finding = judged(world, "undiverged", base_tip="1" * 40)
    assert not finding.met
    assert "is not in the repository: fetch it" in finding.why


# -- plan_digest ---------------------------------------------------------------------------------
def test_plan_digest_met_when_the_approval_names_the_journaled_plan(world):
    approve(world)
    finding = judged(world, "plan_digest")
    assert finding.met
    assert finding.why.startswith("the approval names the plan executed (sha256:")


def test_plan_digest_unmet_when_the_approval_names_another_plan(world):
    approve(world, digest="sha256:" + "0" * 64)
    finding = judged(world, "plan_digest")
    assert not finding.met
    assert "the approval names plan sha256:000000000000, but the execution ran plan" in (
        finding.why
    )


def test_plan_digest_unmet_when_the_journaled_plan_was_altered(world):
    approve(world)
    record = journal.Record.resume(world.repo, world.execution_id)
    plan = journal.load_plan(world.repo, world.execution_id)
    altered = plan.model_copy(update={"branch": "tars-bot/elsewhere"})  # digest kept
    record.save(record.execution, {"plan.json": altered.model_dump_json().encode()})
    finding = judged(world, "plan_digest")
    assert (finding.met, finding.why) == (
        False,
        "the journaled plan does not match its own digest: it was altered",
    )


def test_plan_digest_unmet_without_an_approval(world):
    finding = judged(world, "plan_digest")
    assert (finding.met, finding.why) == (False, "no approval names a plan digest")


# -- the gate on every merge path (S6) ------------------------------------------------------------
def open_pull(world: World):
    pull = world.github.add_pull("two files", head="tars-bot/imp")
    pull.head_sha = world.head
    return pull


def merge(world: World, client: GitHubClient, head: str | None = None, method: str = "merge"):
    add_check_run(world.github, world.head, "tests")
    pull = open_pull(world)
    merged = promotion.merge(
        world.repo,
        client,
        world.execution_id,
        pull.number,
        head or world.head,
        method,  # type: ignore[arg-type]
        base_tip=world.base_tip(),
        requester="alice",
        ci=client.commit_ci(world.head),
    )
    return pull, merged


def test_a_merge_without_an_approval_does_nothing_and_says_why(world, client, fake_github):
    main = world.base_tip()
    with pytest.raises(promotion.PromotionRefused) as refused:
        merge(world, client)
    lines = refused.value.args
    assert (
        lines[0] == f"execution {world.execution_id}: not promoted to prod, 3 requirements unmet:"
    )
    assert lines[1:] == (
        "  ✘ approved: no approval of the promotion is recorded in the journal",
        "  ✘ plan_digest: no approval names a plan digest",
        "  ✘ not_self: no approver to tell apart from the requester",
    )
    assert fake_github.calls("PUT") == []
    assert [p.state for p in world.github.pulls()] == ["open"]
    assert world.base_tip() == main


def test_a_merge_of_another_head_than_the_executions_is_refused(world, client, fake_github):
    approve(world)
    base = world.execution.base_commit
    with pytest.raises(promotion.PromotionRefused, match="the branch moved"):
        merge(world, client, head=base)
    assert fake_github.calls("PUT") == []


def test_a_rolled_back_execution_is_not_promoted(world, client, cli, fake_github):
    approve(world)
    assert cli("rollback", "--repo", world.work, "--execution-id", world.execution_id).code == 0
    with pytest.raises(promotion.PromotionRefused) as refused:
        merge(world, client)
    assert str(refused.value) == f"execution {world.execution_id} is rolled_back: not promotable"
    assert fake_github.calls("PUT") == []


def test_a_readers_approval_does_not_open_the_merge(world, client, fake_github):
    approve(world, by="reader", permission="read")
    with pytest.raises(promotion.PromotionRefused, match="reader approved with read permission"):
        merge(world, client)
    assert fake_github.calls("PUT") == []


def test_github_refuses_a_head_that_moved_after_the_check(world, client, fake_github):
    approve(world)
    clone = world.origin.parent / "pusher"
    git(world.origin.parent, "clone", "-q", "-b", "tars-bot/imp", str(world.origin), str(clone))
    commit_files(clone, {"extra.txt": "sneaked in\n"}, "after the approval")
    git(clone, "push", "-q", "origin", "HEAD:tars-bot/imp")
    main = world.base_tip()
    with pytest.raises(TarsError, match="the head of #1 moved from"):
        merge(world, client)
    assert world.base_tip() == main


# -- the promotion's effect (S9) -------------------------------------------------------------------
@pytest.mark.parametrize("method", ["merge", "squash", "rebase", "queue-or-merge"])
def test_an_approved_promotion_lands_the_approved_change(world, client, method):
    approve(world)
    world.push_main({"other.txt": "someone else's work\n"}, "elsewhere")  # onto moved on
    pull, landed = merge(world, client, method=method)
    assert pull.merge_commit_sha == landed
    effect = promotion.verify(world.repo, world.execution, world.base_tip(), landed)
    kind = {"queue-or-merge": "merge"}.get(method, method)
    assert effect.ok, effect.why
    assert effect.landing is not None and effect.landing.kind == kind
    assert effect.why.startswith(f"{kind} ")
    assert effect.why.endswith("holds the approved change")


def test_a_squash_that_dropped_a_files_change_is_a_mismatch(world):
    approve(world)
    clone = world.origin.parent / "maintainer"
    git(world.origin.parent, "clone", "-q", str(world.origin), str(clone))
    git(clone, "merge", "--squash", "-q", "origin/tars-bot/imp")
    git(clone, "checkout", "HEAD", "--", "b.txt")  # one file's change lost
    git(clone, "commit", "-q", "-m", "two files (#1)")
    git(clone, "push", "-q", "origin", "HEAD:main")
    squash, tip = git(clone, "rev-parse", "HEAD"), world.base_tip()

    effect = promotion.verify(world.repo, world.execution, tip, squash)
    assert not effect.ok
    assert effect.why == f"squash {squash[:10]}: b.txt does not hold the approved change"
    unseen = promotion.verify(world.repo, world.execution, tip)  # without GitHub's word
    assert (unseen.ok, unseen.why) == (
        False,
        f"the change of {world.head[:10]} is not on the base at {tip[:10]}",
    )


def test_a_merge_of_a_different_head_is_a_mismatch(world):
    approve(world)
    clone = world.origin.parent / "maintainer"
    git(world.origin.parent, "clone", "-q", str(world.origin), str(clone))
    git(clone, "checkout", "-q", "-b", "other", "origin/tars-bot/imp")
    commit_files(clone, {"extra.txt": "not approved\n"}, "more")
    git(clone, "checkout", "-q", "main")
    git(clone, "merge", "--no-ff", "-q", "-m", "Merge pull request #1", "other")
    git(clone, "push", "-q", "origin", "HEAD:main")
    merged = git(clone, "rev-parse", "HEAD")

    effect = promotion.verify(world.repo, world.execution, world.base_tip(), merged)
    assert not effect.ok
    assert effect.why == f"merge {merged[:10]}: extra.txt changed, which was not approved"


def test_a_file_the_base_also_changed_is_checked_against_a_three_way_merge(world):
    """The base changed b.txt elsewhere before the merge: the landed b.txt must be the approved
    change applied onto the base's, and one without it is a mismatch."""
    approve(world)
    clone = world.origin.parent / "maintainer"
    git(world.origin.parent, "clone", "-q", str(world.origin), str(clone))
    commit_files(clone, {"b.txt": B_TXT + "5\n"}, "b grows")
    onto = git(clone, "rev-parse", "HEAD")
    git(clone, "merge", "--no-ff", "-q", "-m", "Merge pull request #1", "origin/tars-bot/imp")
    assert (clone / "b.txt").read_text() == B_TXT.replace("beta", "BETA") + "5\n"
    git(clone, "push", "-q", "origin", "HEAD:main")
    good = promotion.verify(world.repo, world.execution, world.base_tip())
    assert good.ok, good.why

    git(clone, "reset", "-q", "--hard", onto)  # the same merge, but b.txt as the base had it
    git(clone, "merge", "--no-ff", "--no-commit", "-q", "origin/tars-bot/imp")
    git(clone, "checkout", onto, "--", "b.txt")
    git(clone, "commit", "-q", "-m", "Merge pull request #1")
    git(clone, "push", "-q", "-f", "origin", "HEAD:main")
    merged = git(clone, "rev-parse", "HEAD")
    bad = promotion.verify(world.repo, world.execution, world.base_tip())
    assert not bad.ok
    assert bad.why == f"merge {merged[:10]}: b.txt does not hold the approved change"


# -- tars-bot promote --check ----------------------------------------------------------------------
def test_promote_check_names_each_unmet_requirement_and_exits_2(world, cli):
    result = cli("promote", "--repo", world.work, "--execution-id", "latest", "--check")
    assert result.code == 2, result.err
    lines = result.out.splitlines()
    assert lines[0] == "✘ approved: no approval of the promotion is recorded in the journal"
    assert lines[1] == (
        f"✘ checks_green: the CI on {world.head[:10]} was not read (no connection to GitHub)"
    )
    base = world.execution.base_commit
    assert lines[2] == f"✔ undiverged: the base has not moved since {base[:10]}"
    assert [line[0] for line in lines] == ["✘", "✘", "✔", "✘", "✘"]


def test_promote_check_reads_the_ci_from_github_and_passes(world, cli, fake_github, monkeypatch):
    monkeypatch.setenv("GITHUB_API_URL", fake_github.url)
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/app")
    monkeypatch.setenv("GITHUB_TOKEN", fake_github.token)
    approve(world)
    add_check_run(world.github, world.head, "tests")
    result = cli(
        "promote", "--repo", world.work, "--execution-id", world.execution_id, "--check",
        "--requester", "alice", "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.out + result.err
    report = conforms(result.out, "promote")
    assert report["format"] == "tars-bot.promote/1"
    assert report["promotable"] is True
    assert report["head_commit"] == world.head
    assert [r["name"] for r in report["requirements"]] == [
        "approved", "checks_green", "undiverged", "plan_digest", "not_self",
    ]  # fmt: skip
    assert all(r["met"] for r in report["requirements"])


def test_promote_without_check_is_a_usage_error(world, cli):
    result = cli("promote", "--repo", world.work, "--execution-id", "latest")
    assert result.code == 2
    assert "only --check is available here" in result.err

//! The review gate: a tag is made only when every commit it releases reached the default branch
//! through a merged pull request that GitHub itself would call approved.
//!
//! What GitHub counts, and so what the gate counts:
//!
//! - Approvals from people with write access (admin, maintain or write) only: "About protected
//!   branches" ("approved by the required number of reviewers with write permissions"). Access
//!   is read from "Get repository permissions for a user", never from `author_association`,
//!   which reports org members with private membership as `CONTRIBUTOR` and read-only
//!   collaborators as `COLLABORATOR`.
//! - A change request blocks only when its author has write access ("Request changes … If
//!   configured and a collaborator with admin, owner, or write access … submits a review
//!   requesting changes, the pull request cannot be merged until …"); others are reported and
//!   ignored.
//! - Each reviewer's latest approval, change request or dismissal decides; a dismissal (GitHub
//!   changes the review's state to `DISMISSED`) withdraws the approval it replaced.
//! - Stale approvals: when "dismiss stale approvals" is on, GitHub dismisses them itself, so an
//!   approval still `APPROVED` is one GitHub counts (`tag.stale_approvals = "github"`, the
//!   default). "Require approval of the most recent reviewable push", read from the branch's
//!   rulesets or classic protection, asks for an approval of the head commit. With
//!   `stale_approvals = "head"` only approvals of the head commit count, whatever the branch's
//!   rules.
//! - The approvals required: the most of `tag.required_approvals` and the branch's rules
//!   ("About rulesets": the most restrictive rule wins, and rulesets layer with classic
//!   protection).
//!
//! GitHub fills in a commit's pull request a little after the merge ("List pull requests
//! associated with a commit" answers empty meanwhile; rust-lang/rust#140703 waits a minute):
//! commits without one are asked again, with backoff, for `association_wait`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::{GitHub, GitHubError, Permission, PullRequest, Review};
use crate::config::StaleApprovals;

/// What the gate is asked to enforce.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The branch releases come from.
    pub branch: String,
    /// `tag.required_approvals`.
    pub required: u32,
    pub stale: StaleApprovals,
    /// How long to wait for GitHub to associate a merged commit with its pull request.
    pub association_wait: Duration,
}

impl Settings {
    /// The settings of `[tag]`, and the association wait from
    /// `IMAGEPIPE_GITHUB_ASSOCIATION_WAIT` (default a minute, as rust-lang/rust#140703 waits).
    pub fn of(config: &crate::config::Config) -> Result<Self, GitHubError> {
        let name = crate::env::GITHUB_ASSOCIATION_WAIT;
        let association_wait = match crate::env::var(name) {
            Some(v) => humantime::parse_duration(&v).map_err(|e| {
                GitHubError::Setting(format!("{name}=`{v}` is not a duration (`90s`, `2m`): {e}"))
            })?,
            None => Duration::from_secs(60),
        };
        Ok(Self {
            branch: config.tag.default_branch.clone(),
            required: config.tag.required_approvals,
            stale: config.tag.stale_approvals,
            association_wait,
        })
    }
}

/// The branch's own rules, as far as the token may read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub required: u32,
    pub last_push_approval: bool,
    pub dismiss_stale: bool,
    /// What could not be read, and what that means.
    pub notes: Vec<String>,
}

/// The gate's answer for a set of commits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Pull requests that passed, with their approvers.
    pub approved: BTreeMap<u64, Vec<String>>,
    /// Commits that did not pass, by id, with the reason.
    pub refused: Vec<(String, String)>,
    /// Things the user should know: unreadable rules, ignored reviews.
    pub notes: Vec<String>,
}

impl Verdict {
    /// The review line of a tag message.
    pub fn summary(&self) -> String {
        match self.approved.iter().collect::<Vec<_>>().as_slice() {
            [(pull, who)] => format!("pull request #{pull} approved by {}", who.join(", ")),
            many => format!(
                "pull requests {} approved",
                many.iter()
                    .map(|(p, who)| format!("#{p} ({})", who.join(", ")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Reads the branch's rulesets ("Get rules for a branch", readable by every token) and its
/// classic protection ("Get branch protection", which needs Administration: read).
pub async fn branch_rules(
    gh: &GitHub,
    branch: &str,
    configured: u32,
) -> Result<Rules, GitHubError> {
    let mut rules = Rules {
        required: configured,
        ..Rules::default()
    };
    for rule in gh.branch_rules(branch).await? {
        if rule.kind != "pull_request" {
            continue;
        }
        let p = rule.parameters.unwrap_or_default();
        let count = p["required_approving_review_count"].as_u64().unwrap_or(0);
        rules.required = rules.required.max(u32::try_from(count).unwrap_or(u32::MAX));
        rules.last_push_approval |= p["require_last_push_approval"].as_bool() == Some(true);
        rules.dismiss_stale |= p["dismiss_stale_reviews_on_push"].as_bool() == Some(true);
    }
    match gh.classic_protection(branch).await {
        Ok(Some(protection)) => {
            if let Some(r) = protection.required_pull_request_reviews {
                rules.required = rules.required.max(r.required_approving_review_count);
                rules.last_push_approval |= r.require_last_push_approval;
                rules.dismiss_stale |= r.dismiss_stale_reviews;
            }
        }
        Ok(None) => {}
        Err(GitHubError::Forbidden { .. } | GitHubError::NotFound { .. }) => {
            rules.notes.push(format!(
                "the classic protection of `{branch}` is not readable with this token (it needs \
                 Administration: read, which a workflow's GITHUB_TOKEN cannot have): its \
                 required approval count and \"most recent push\" rule are not applied; \
                 approvals it dismissed as stale are marked so by GitHub and do not count; \
                 rulesets were read"
            ));
        }
        Err(e) => return Err(e),
    }
    Ok(rules)
}

/// Gates `commits` (full ids): each must have reached `settings.branch` through a merged,
/// approved pull request.
pub async fn review_gate(
    gh: &GitHub,
    commits: &[String],
    settings: &Settings,
) -> Result<Verdict, GitHubError> {
    let rules = branch_rules(gh, &settings.branch, settings.required).await?;
    let mut verdict = Verdict {
        notes: rules.notes.clone(),
        ..Verdict::default()
    };
    let associated = associate(gh, commits, settings.association_wait).await?;
    let mut access: HashMap<String, bool> = HashMap::new();
    let mut judged: HashMap<u64, Result<Vec<String>, String>> = HashMap::new();
    for commit in commits {
        let pulls = &associated[commit];
        let candidates: Vec<&PullRequest> = pulls
            .iter()
            .filter(|p| p.merged_at.is_some() && p.base.name == settings.branch)
            .collect();
        if candidates.is_empty() {
            verdict
                .refused
                .push((commit.clone(), unmerged(commit, &settings.branch, pulls)));
            continue;
        }
        let mut reasons = Vec::new();
        for pull in candidates {
            if let std::collections::hash_map::Entry::Vacant(slot) = judged.entry(pull.number) {
                // `judged` already holds each pull request once: its reviews are read once.
                let list = &gh.reviews(pull.number).await?;
                for login in deciders(list) {
                    if !access.contains_key(login) {
                        let p: Permission = gh.permission(login).await?;
                        access.insert(login.to_string(), p.can_write());
                    }
                }
                let (outcome, notes) = judge(pull, list, &rules, settings.stale, &|u| {
                    access.get(u).copied().unwrap_or(false)
                });
                verdict.notes.extend(notes);
                slot.insert(outcome);
            }
            match &judged[&pull.number] {
                Ok(approvers) => {
                    verdict.approved.insert(pull.number, approvers.clone());
                    reasons.clear();
                    break;
                }
                Err(why) => reasons.push(why.clone()),
            }
        }
        if !reasons.is_empty() {
            verdict.refused.push((commit.clone(), reasons.join("; ")));
        }
    }
    verdict.notes.dedup();
    Ok(verdict)
}

/// Each commit's pull requests, asking again for those GitHub has not associated yet.
async fn associate(
    gh: &GitHub,
    commits: &[String],
    wait: Duration,
) -> Result<HashMap<String, Vec<PullRequest>>, GitHubError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_secs(1);
    let mut found: HashMap<String, Vec<PullRequest>> = HashMap::new();
    let mut pending: Vec<&String> = commits.iter().collect();
    loop {
        let mut still = Vec::new();
        for c in pending {
            let pulls = gh.pulls_for_commit(c).await?;
            if pulls.is_empty() {
                still.push(c);
            }
            found.insert(c.clone(), pulls);
        }
        pending = still;
        let now = tokio::time::Instant::now();
        if pending.is_empty() || now >= deadline {
            return Ok(found);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause *= 2;
    }
}

/// Why no associated pull request merged `commit` into `branch`.
fn unmerged(commit: &str, branch: &str, pulls: &[PullRequest]) -> String {
    if pulls.is_empty() {
        return format!(
            "commit {commit} is in no pull request: build code reaches {branch} only through a \
             reviewed pull request"
        );
    }
    let reasons: Vec<String> = pulls
        .iter()
        .map(|p| {
            if p.merged_at.is_none() {
                format!("#{} is not merged", p.number)
            } else {
                format!(
                    "#{} was merged into `{}`, not `{branch}`",
                    p.number, p.base.name
                )
            }
        })
        .collect();
    format!(
        "commit {commit} did not reach `{branch}` through a merged pull request ({})",
        reasons.join("; ")
    )
}

/// Each reviewer's latest deciding review: an approval, a change request or a dismissal.
/// Comments and pending reviews neither approve nor withdraw anything.
fn latest(reviews: &[Review]) -> BTreeMap<&str, &Review> {
    let mut out = BTreeMap::new();
    for r in reviews {
        if matches!(
            r.state.as_str(),
            "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED"
        ) && let Some(u) = &r.user
        {
            out.insert(u.login.as_str(), r);
        }
    }
    out
}

/// The reviewers whose access decides the outcome.
fn deciders(reviews: &[Review]) -> Vec<&str> {
    latest(reviews)
        .into_iter()
        .filter(|(_, r)| r.state != "DISMISSED")
        .map(|(u, _)| u)
        .collect()
}

/// Judges one pull request: `Ok(approvers)` or `Err(reason)`, and notes on reviews ignored.
pub fn judge(
    pull: &PullRequest,
    reviews: &[Review],
    rules: &Rules,
    stale: StaleApprovals,
    can_write: &dyn Fn(&str) -> bool,
) -> (Result<Vec<String>, String>, Vec<String>) {
    let author = pull.user.as_ref().map(|u| u.login.as_str());
    let head = pull.head.sha.as_str();
    let mut approvers = Vec::new();
    let mut on_head = false;
    let (mut stale_by, mut outsiders, mut requested, mut ignored) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut own = false;
    for (login, r) in latest(reviews) {
        let of_head = r.commit_id.as_deref() == Some(head);
        match r.state.as_str() {
            "APPROVED" if Some(login) == author => own = true,
            "APPROVED" if !can_write(login) => outsiders.push(login.to_string()),
            "APPROVED" if stale == StaleApprovals::Head && !of_head => {
                stale_by.push(login.to_string())
            }
            "APPROVED" => {
                on_head |= of_head;
                approvers.push(login.to_string());
            }
            "CHANGES_REQUESTED" if can_write(login) => requested.push(login.to_string()),
            "CHANGES_REQUESTED" => ignored.push(login.to_string()),
            _ => {}
        }
    }
    let mut notes = Vec::new();
    if !ignored.is_empty() {
        notes.push(format!(
            "pull request #{}: changes requested by {} are not counted: no write access, so \
             GitHub does not let them block",
            pull.number,
            ignored.join(", ")
        ));
    }
    let n = pull.number;
    if !requested.is_empty() {
        return (
            Err(format!(
                "pull request #{n} has changes requested by {}",
                requested.join(", ")
            )),
            notes,
        );
    }
    if approvers.len() < rules.required as usize {
        let what = match stale {
            StaleApprovals::Head => "approving review(s) on its head commit",
            StaleApprovals::Github => "approving review(s) from people with write access",
        };
        let mut why = format!(
            "pull request #{n} has {} {what}, {} required",
            approvers.len(),
            rules.required
        );
        if !stale_by.is_empty() {
            why.push_str(&format!(
                "; stale approvals (on an older commit) by {}",
                stale_by.join(", ")
            ));
        }
        if !outsiders.is_empty() {
            why.push_str(&format!(
                "; approvals by {} do not count: no write access",
                outsiders.join(", ")
            ));
        }
        if own {
            why.push_str("; the author's own approval does not count");
        }
        return (Err(why), notes);
    }
    if rules.last_push_approval && !on_head && rules.required > 0 {
        return (
            Err(format!(
                "pull request #{n}: the branch requires an approval of the most recent push, and \
                 no approval is of its head commit {head}"
            )),
            notes,
        );
    }
    (Ok(approvers), notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::{BranchRef, HeadRef, User};

    fn pull(number: u64) -> PullRequest {
        PullRequest {
            number,
            user: Some(User {
                login: "author".into(),
            }),
            merged_at: Some("2026-11-20T10:00:00Z".into()),
            merge_commit_sha: Some("abc".into()),
            base: BranchRef {
                name: "main".into(),
            },
            head: HeadRef { sha: "head".into() },
            html_url: None,
        }
    }

    fn review(user: &str, state: &str, commit: &str) -> Review {
        Review {
            user: Some(User { login: user.into() }),
            state: state.into(),
            commit_id: Some(commit.into()),
            submitted_at: None,
        }
    }

    fn rules(required: u32) -> Rules {
        Rules {
            required,
            ..Rules::default()
        }
    }

    /// alice, bob and carol have write access; eve does not.
    fn writers(u: &str) -> bool {
        u != "eve"
    }

    fn judged(reviews: &[Review], r: &Rules, stale: StaleApprovals) -> Result<Vec<String>, String> {
        judge(&pull(7), reviews, r, stale, &writers).0
    }

    #[test]
    fn only_writers_approve_and_only_writers_block() {
        let g = StaleApprovals::Github;
        assert_eq!(
            judged(&[review("alice", "APPROVED", "head")], &rules(1), g),
            Ok(vec!["alice".into()])
        );
        let e = judged(&[review("eve", "APPROVED", "head")], &rules(1), g).unwrap_err();
        assert!(
            e.contains("approvals by eve do not count: no write access"),
            "{e}"
        );
        // An outsider's change request does not block, and is reported.
        let (outcome, notes) = judge(
            &pull(7),
            &[
                review("alice", "APPROVED", "head"),
                review("eve", "CHANGES_REQUESTED", "head"),
            ],
            &rules(1),
            g,
            &writers,
        );
        assert_eq!(outcome, Ok(vec!["alice".into()]));
        assert!(notes[0].contains("changes requested by eve are not counted"));
        let e = judged(
            &[
                review("alice", "APPROVED", "head"),
                review("bob", "CHANGES_REQUESTED", "head"),
            ],
            &rules(1),
            g,
        )
        .unwrap_err();
        assert!(e.contains("changes requested by bob"), "{e}");
        let e = judged(&[review("author", "APPROVED", "head")], &rules(1), g).unwrap_err();
        assert!(e.contains("author's own approval"), "{e}");
    }

    #[test]
    fn stale_approvals_follow_the_rule_in_force() {
        let old = [review("alice", "APPROVED", "old")];
        // GitHub keeps an approval after the branch moved unless it dismissed it.
        assert_eq!(
            judged(&old, &rules(1), StaleApprovals::Github),
            Ok(vec!["alice".into()])
        );
        let e = judged(&old, &rules(1), StaleApprovals::Head).unwrap_err();
        assert!(
            e.contains("stale approvals (on an older commit) by alice"),
            "{e}"
        );
        let last_push = Rules {
            required: 1,
            last_push_approval: true,
            ..Rules::default()
        };
        let e = judged(&old, &last_push, StaleApprovals::Github).unwrap_err();
        assert!(e.contains("most recent push"), "{e}");
        // A dismissal withdraws the approval it replaced; a later approval counts again.
        let dismissed = [review("alice", "DISMISSED", "old")];
        assert!(judged(&dismissed, &rules(1), StaleApprovals::Github).is_err());
        let again = [
            review("alice", "DISMISSED", "old"),
            review("alice", "APPROVED", "head"),
        ];
        assert!(judged(&again, &rules(1), StaleApprovals::Github).is_ok());
        // Comments after an approval change nothing; counts are checked.
        let resolved = [
            review("bob", "CHANGES_REQUESTED", "old"),
            review("bob", "APPROVED", "head"),
            review("bob", "COMMENTED", "head"),
        ];
        assert_eq!(
            judged(&resolved, &rules(1), StaleApprovals::Github),
            Ok(vec!["bob".into()])
        );
        let e = judged(&resolved, &rules(2), StaleApprovals::Github).unwrap_err();
        assert!(e.contains("has 1 approving review(s) from people with write access, 2 required"));
    }

    #[test]
    fn a_summary_names_each_pull_request() {
        let mut v = Verdict::default();
        v.approved.insert(12, vec!["alice".into()]);
        assert_eq!(v.summary(), "pull request #12 approved by alice");
        v.approved.insert(13, vec!["bob".into(), "carol".into()]);
        assert_eq!(
            v.summary(),
            "pull requests #12 (alice), #13 (bob, carol) approved"
        );
    }
}

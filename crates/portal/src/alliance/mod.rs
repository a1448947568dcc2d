//! The alliance domain, without HTTP: member institutions, the expert registry and committee
//! reviews, the project pipeline state machine, feasibility cohorts, site selection, enrollment
//! reports and the phenotype library — stored in the portal's own tables in the hub's database
//! ([`INSTITUTIONS`], [`EXPERTS`], [`PIPELINE`], [`COHORTS`], [`LIBRARY`]: extension tables of
//! the hub's [`HubStore`], created on first write) beside the hub's users, sites, projects and
//! jobs. Every change runs in one store transaction that also appends its audit entry; a
//! refusal leaves the transaction as a typed [`Refusal`] and rolls it back, so a refused or
//! failed change leaves nothing behind.
//!
//! The pipeline unifies with the hub's project approval flag: a project's `approved` is true
//! exactly in the stages approved, feasibility, site selection and running, so the hub runs
//! queries only under those.

mod accounts;
mod analyses;
mod experts;
mod feasibility;
mod guidance;
mod input;
mod institutions;
mod invitations;
mod library;
mod pipeline;
mod quorum;
mod recruitment;
mod refusal;
mod regression;
mod review_criteria;
mod settings;
mod tables;

pub use accounts::{
    account_invites, change_role, invite_account, open_invite, parse_role, redeem_invite,
    reset_link, set_site_pages, site_pages, AccountInvite, LINK_SECS,
};
pub use analyses::{
    analysis_run, analysis_runs, characterization_spec, incidence_spec, parse_tar,
    run_characterization, run_incidence, run_survival, survival_spec, AnalysisKind, AnalysisRun,
    CharacterizationForm, IncidenceForm, SurvivalForm, ANALYSES,
};
pub use experts::{appoint_expert, experts, Appointment, Expert, ExpertForm};
pub use feasibility::{
    attach_cohort, cohort_definition, cohort_version, data_dates, replace_cohort, run_feasibility,
    FEASIBILITY_AGE_BAND,
};
pub use guidance::{guide, score_summary, Guide, ScoreSummary, STEPS};
pub use input::{check_definition, id_ok, text_ok, MAX_DEFINITION_BYTES};
pub use institutions::{
    application_status, apply, check_application, decide_institution, institution, institution_of,
    institutions, Application, Institution, InstitutionKind, MemberStatus,
};
pub use invitations::{answer_invite, invite_sites, report_enrollment};
pub use library::{
    import_library, library_entry, search_library, ImportReport, LibraryEntry, LibrarySummary,
};
pub use pipeline::{
    assign_reviewers, can_see, create_project, decide_project, project_file, project_files,
    submit_review, transition, transition_roles, CohortRef, CohortSource, CohortVersion,
    FeasibilityRun, Invite, InviteStatus, ProjectFile, ProjectForm, RecruitmentRequest, Report,
    Review, Stage, Transition,
};
pub use quorum::{quorum, set_quorum, DEFAULT_QUORUM, MAX_QUORUM};
pub use recruitment::{
    collect_recruitment, enrolled, latest_view, months_since, next_collection, recruitment_lines,
    LineSource, RecruitmentLine, COLLECT_INTERVAL_SECS,
};
pub use refusal::{Outcome, Refusal};
pub use regression::{
    regression_choice, resume_regression, run_regression, CovariateChoice, RegressionChoice,
    RegressionForm,
};
pub use review_criteria::{criteria, default_criteria, set_criteria, Criterion};
pub use settings::{set_zone, user_settings, UserSettings, SETTINGS};
pub use tables::{ACCOUNT_INVITES, COHORTS, EXPERTS, INSTITUTIONS, LIBRARY, PIPELINE, SITE_PAGES};

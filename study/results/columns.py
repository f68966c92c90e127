"""The export's columns and what each one means: the one declaration that the CSV writers,
the row builders (`study.results.rows`) and the codebook (codebook.csv) all read."""

from dataclasses import dataclass

from study.design.questionnaire import QUESTIONNAIRE_FIELDS, QuestionnaireForm


@dataclass(frozen=True)
class Column:
    name: str
    description: str


_QUESTIONNAIRE = QuestionnaireForm.base_fields  # the generic wording: see condition_texts


QUESTIONNAIRE_COLUMNS = tuple(
    Column(f"q_{name}", f"questionnaire: {_QUESTIONNAIRE[name].label} (blank: not asked)")
    for name in QUESTIONNAIRE_FIELDS
)


EXCLUSION_COLUMNS = (
    Column(
        "participant_pilot",
        "1 if the participant entered while the study was a pilot; left out of analyses by default",
    ),
    Column(
        "participant_simulated",
        "1 if a bot of simulate_participants, not a person (never a real participant's data)",
    ),
    Column("participant_excluded", "1 if the study's declared exclusion rules exclude them"),
    Column("exclusion_reasons", "why they are excluded, '; '-separated (blank: not excluded)"),
)


# The one declaration of the export's columns: the CSV writers and the codebook both read it.
RESPONSE_COLUMNS = (
    Column("study", "study slug"),
    Column("participant", "participant number within this database (not a platform id)"),
    Column("platform_pseudonym", "keyed hash of the platform worker id (blank: open link)"),
    Column("participant_status", "active, completed, declined, screened_out or timed_out"),
    *EXCLUSION_COLUMNS,
    Column("attention_checks_failed", "attention checks this participant answered wrongly"),
    Column("condition", "the participant's condition"),
    Column("explanation_method", "engine method slug of the condition ('none': no explanation)"),
    Column(
        "explanation_params_hash",
        "hash of the method's full parameters (blank: no explanation)",
    ),
    Column("phase", "training (practice with feedback), main, or attention (attention check)"),
    Column("trial_position", "0-based position of this trial in the participant's sequence"),
    Column("item", "study item id (an image in a role)"),
    Column("image", "opaque image id"),
    Column("true_label", "the image's true class"),
    Column("answer", "the answer as the participant read it"),
    Column("correct_answer", "the value that counted as correct (a label id, yes/no, ...)"),
    Column("is_correct", "1 if the answer was correct"),
    Column(
        "confidence",
        "the participant's confidence, 1 (guessing) to 5 (certain); blank on attention checks",
    ),
    Column(
        "client_response_ms",
        "ms from the stimulus being painted to the answer, measured in the browser",
    ),
    Column("server_response_ms", "ms from the server sending the trial to receiving the answer"),
    Column(
        "response_ms",
        "the response time analyses and exclusions use: client_response_ms where consistent "
        "with the server's (present and not longer), else server_response_ms",
    ),
    Column(
        "client_time_inconsistent",
        "1 if client_response_ms is missing or longer than server_response_ms (then ignored)",
    ),
    Column("ai_prediction", "the classifier's predicted class for the image"),
    Column("ai_confidence", "the classifier's softmax probability of its prediction"),
    Column("ai_correct", "1 if the classifier's prediction is the true class"),
    Column("explanation", "opaque id of the explanation shown (blank: none)"),
    Column("server_shown_at", "when the server sent the trial (ISO 8601, UTC)"),
    Column("server_received_at", "when the server received the answer (ISO 8601, UTC)"),
    Column("viewport", "browser viewport, WIDTHxHEIGHT in CSS px"),
    Column(
        "stimulus_missing",
        "1 if the answer was given while a photo or figure of the trial had not loaded",
    ),
    Column(
        "interactions",
        'JSON list of explanation interactions, [{"event": ..., "ms": ...}], ms from paint',
    ),
    Column("study_config_hash", "hash of the frozen study design the participant saw"),
    *QUESTIONNAIRE_COLUMNS,
)


EXPORT_COLUMNS = tuple(column.name for column in RESPONSE_COLUMNS)


PARTICIPANT_COLUMNS = (
    Column("study", "study slug"),
    Column("participant", "participant number within this database (not a platform id)"),
    Column("platform_pseudonym", "keyed hash of the platform worker id (blank: open link)"),
    Column("condition", "the participant's condition"),
    Column("explanation_method", "engine method slug of the condition ('none': no explanation)"),
    Column("participant_status", "active, completed, declined, screened_out or timed_out"),
    *EXCLUSION_COLUMNS,
    Column("page", "the last page of the flow the participant reached"),
    Column("started_at", "entry time (ISO 8601, UTC)"),
    Column("consented_at", "consent time (blank: did not consent)"),
    Column("completed_at", "completion time (blank: did not complete)"),
    Column("last_seen_at", "time of the participant's last request"),
    Column("duration_s", "seconds from entry to completion (blank: did not complete)"),
    Column("consent_version", "version of the consent text agreed to"),
    Column("comprehension_attempts", "attempts at the comprehension check"),
    Column(
        "comprehension_passed",
        "1 passed, 0 screened out, blank: no check in this study or not reached",
    ),
    Column("practice_trials", "practice trials answered"),
    Column("practice_correct", "practice trials answered correctly"),
    Column("main_trials", "main trials answered"),
    Column("main_correct", "main trials answered correctly"),
    Column("main_accuracy", "main_correct / main_trials (blank: none answered)"),
    Column(
        "median_response_ms",
        "median response_ms on main trials (the server's time, refined by a consistent client's)",
    ),
    Column("attention_checks", "attention checks answered"),
    Column("attention_checks_failed", "attention checks answered wrongly"),
    Column("study_config_hash", "hash of the frozen study design the participant saw"),
    *QUESTIONNAIRE_COLUMNS,
)


PARTICIPANT_EXPORT_COLUMNS = tuple(column.name for column in PARTICIPANT_COLUMNS)

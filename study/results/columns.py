"""The export's columns and what each one means: the one declaration that the CSV writers,
the row builders (`study.results.rows`) and the codebook (codebook.csv) all read."""

from dataclasses import dataclass

from study.design.questionnaire import QUESTIONNAIRE_FIELDS, QuestionnaireForm

# The types a codebook names; every column declares one.
INTEGER = "integer"
NUMBER = "number"
TEXT = "text"
BOOLEAN = "boolean (1 yes, 0 no)"
DATETIME = "datetime (ISO 8601, UTC)"
JSON = "JSON"
TYPES = (INTEGER, NUMBER, TEXT, BOOLEAN, DATETIME, JSON)

STATUSES = "active, completed, declined, screened_out, timed_out"


@dataclass(frozen=True)
class Column:
    """One export column: its name, what it holds, its type, unit (blank: none) and the
    values it may take (blank: any of its type)."""

    name: str
    description: str
    type: str = TEXT
    unit: str = ""
    allowed: str = ""

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"column {self.name}: unknown type {self.type!r}")


_QUESTIONNAIRE = QuestionnaireForm.base_fields  # the generic wording: see condition_texts


def _questionnaire_column(name: str) -> Column:
    field = _QUESTIONNAIRE[name]
    values = [str(value) for value, _ in getattr(field, "choices", [])]
    numeric = bool(values) and all(value.isdigit() for value in values)
    return Column(
        f"q_{name}",
        f"questionnaire: {field.label} (blank: not asked)",
        INTEGER if numeric else TEXT,
        allowed=(f"{values[0]}..{values[-1]}" if numeric else ", ".join(values)),
    )


QUESTIONNAIRE_COLUMNS = tuple(_questionnaire_column(name) for name in QUESTIONNAIRE_FIELDS)


EXCLUSION_COLUMNS = (
    Column(
        "participant_pilot",
        "1 if the participant entered while the study was a pilot; left out of analyses by default",
        BOOLEAN,
        allowed="0, 1",
    ),
    Column(
        "participant_simulated",
        "1 if a bot of simulate_participants, not a person (never a real participant's data)",
        BOOLEAN,
        allowed="0, 1",
    ),
    Column(
        "participant_excluded",
        "1 if the study's declared exclusion rules exclude them",
        BOOLEAN,
        allowed="0, 1",
    ),
    Column("exclusion_reasons", "why they are excluded, '; '-separated (blank: not excluded)"),
)

_STUDY = Column("study", "study slug")
_PARTICIPANT = Column(
    "participant", "participant number within this database (not a platform id)", INTEGER
)
_PSEUDONYM = Column("platform_pseudonym", "keyed hash of the platform worker id (blank: open link)")
_STATUS = Column("participant_status", "the participant's status", allowed=STATUSES)
_CONDITION = Column("condition", "the participant's condition (a name of design.json)")
_METHOD = Column(
    "explanation_method", "engine method slug of the condition ('none': no explanation)"
)
_CONFIG_HASH = Column(
    "study_config_hash", "hash (SHA-256, hex) of the frozen study design the participant saw"
)


# The one declaration of the export's columns: the CSV writers and the codebook both read it.
RESPONSE_COLUMNS = (
    _STUDY,
    _PARTICIPANT,
    _PSEUDONYM,
    _STATUS,
    *EXCLUSION_COLUMNS,
    Column(
        "attention_checks_failed",
        "attention checks this participant answered wrongly",
        INTEGER,
        unit="checks",
    ),
    _CONDITION,
    _METHOD,
    Column(
        "explanation_params_hash",
        "hash of the method's full parameters (blank: no explanation)",
    ),
    Column(
        "phase",
        "training (practice with feedback), main, or attention (attention check)",
        allowed="training, main, attention",
    ),
    Column(
        "trial_position", "0-based position of this trial in the participant's sequence", INTEGER
    ),
    Column("item", "study item id (an image in a role)", INTEGER),
    Column("image", "opaque image id (UUID)"),
    Column("true_label", "the image's true class, by name"),
    Column(
        "answer",
        "the answer as the participant read it (a class name, or the question type's "
        "wording: 'Yes, it is right', 'Image A', ...)",
    ),
    Column(
        "correct_answer",
        "the answer that counted as correct, worded as the participant would have read it "
        "(same vocabulary as answer: answer = correct_answer exactly when is_correct is 1)",
    ),
    Column("is_correct", "1 if the answer was correct", BOOLEAN, allowed="0, 1"),
    Column(
        "confidence",
        "the participant's confidence, 1 (guessing) to 5 (certain); blank on attention checks",
        INTEGER,
        allowed="1..5",
    ),
    Column(
        "client_response_ms",
        "time from the stimulus being painted to the answer, measured in the browser",
        INTEGER,
        unit="ms",
    ),
    Column(
        "server_response_ms",
        "time from the server sending the trial to receiving the answer",
        INTEGER,
        unit="ms",
    ),
    Column(
        "response_ms",
        "the response time analyses and exclusions use: client_response_ms where consistent "
        "with the server's (present and not longer), else server_response_ms",
        INTEGER,
        unit="ms",
    ),
    Column(
        "client_time_inconsistent",
        "1 if client_response_ms is missing or longer than server_response_ms (then ignored)",
        BOOLEAN,
        allowed="0, 1",
    ),
    Column("ai_prediction", "the classifier's predicted class for the image, by name"),
    Column(
        "ai_confidence",
        "the classifier's softmax probability of its prediction",
        NUMBER,
        unit="probability",
        allowed="0..1",
    ),
    Column(
        "ai_correct",
        "1 if the classifier's prediction is the true class",
        BOOLEAN,
        allowed="0, 1",
    ),
    Column("explanation", "opaque id of the explanation shown (blank: none)"),
    Column("server_shown_at", "when the server sent the trial", DATETIME),
    Column("server_received_at", "when the server received the answer", DATETIME),
    Column("viewport", "browser viewport, WIDTHxHEIGHT", unit="CSS px"),
    Column(
        "stimulus_missing",
        "1 if the answer was given while a photo or figure of the trial had not loaded",
        BOOLEAN,
        allowed="0, 1",
    ),
    Column(
        "interactions",
        'list of explanation interactions, [{"event": ..., "ms": ...}], ms from paint',
        JSON,
        unit="ms",
    ),
    _CONFIG_HASH,
    *QUESTIONNAIRE_COLUMNS,
)


EXPORT_COLUMNS = tuple(column.name for column in RESPONSE_COLUMNS)


PARTICIPANT_COLUMNS = (
    _STUDY,
    _PARTICIPANT,
    _PSEUDONYM,
    _CONDITION,
    _METHOD,
    _STATUS,
    *EXCLUSION_COLUMNS,
    Column(
        "page",
        "the last page of the flow the participant reached",
        allowed="consent, instructions, comprehension, trials, feedback, questionnaire, "
        "complete, declined, screened_out, timed_out",
    ),
    Column("started_at", "entry time", DATETIME),
    Column("consented_at", "consent time (blank: did not consent)", DATETIME),
    Column("completed_at", "completion time (blank: did not complete)", DATETIME),
    Column("last_seen_at", "time of the participant's last request", DATETIME),
    Column(
        "duration_s",
        "time from entry to completion (blank: did not complete)",
        NUMBER,
        unit="s",
    ),
    Column("consent_version", "version of the consent text agreed to"),
    Column("comprehension_attempts", "attempts at the comprehension check", INTEGER),
    Column(
        "comprehension_passed",
        "1 passed, 0 screened out, blank: no check in this study or not reached",
        BOOLEAN,
        allowed="0, 1, blank",
    ),
    Column("practice_trials", "practice trials answered", INTEGER, unit="trials"),
    Column("practice_correct", "practice trials answered correctly", INTEGER, unit="trials"),
    Column("main_trials", "main trials answered", INTEGER, unit="trials"),
    Column("main_correct", "main trials answered correctly", INTEGER, unit="trials"),
    Column(
        "main_accuracy",
        "main_correct / main_trials (blank: none answered)",
        NUMBER,
        unit="proportion",
        allowed="0..1",
    ),
    Column(
        "median_response_ms",
        "median response_ms on main trials (the server's time, refined by a consistent client's)",
        NUMBER,
        unit="ms",
    ),
    Column("attention_checks", "attention checks answered", INTEGER, unit="checks"),
    Column("attention_checks_failed", "attention checks answered wrongly", INTEGER, unit="checks"),
    _CONFIG_HASH,
    *QUESTIONNAIRE_COLUMNS,
)


PARTICIPANT_EXPORT_COLUMNS = tuple(column.name for column in PARTICIPANT_COLUMNS)

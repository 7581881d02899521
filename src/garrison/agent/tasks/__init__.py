"""The Armadito tasks (one module each): Enrollment, Getjobs, Runjobs, State, Scan, Alerts,
AVConfig, Scheduler."""

TASK_NAMES = (
    "Enrollment",
    "Getjobs",
    "Runjobs",
    "State",
    "Scan",
    "Alerts",
    "AVConfig",
    "Scheduler",
)

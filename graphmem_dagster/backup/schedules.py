"""A daily schedule of the `backup` job, stopped until someone starts it in the UI or with `dagster schedule start`."""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from graphmem_dagster.backup.jobs import backup_job

# Every day at 03:00 UTC.
BACKUP_CRON = "0 3 * * *"

daily_backup_schedule = ScheduleDefinition(
    name="daily_backup",
    job=backup_job,
    cron_schedule=BACKUP_CRON,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Back up the configured namespace once a day.",
)

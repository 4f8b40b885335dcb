"""What starts runs besides a person: watched folders, USB drives, schedules, dependencies."""

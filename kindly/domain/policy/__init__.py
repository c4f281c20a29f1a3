"""Kindly policy: holiday calendars, schedules and reply handling."""

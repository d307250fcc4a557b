"""The read-only operator console served under ``/console`` (see ``ruvon_cloud.console.app``)."""

from ruvon_cloud.console.app import ConsoleApp, is_console_path

__all__ = ["ConsoleApp", "is_console_path"]

"""The staff console: server-rendered pages for the collections floor, served by the API under
``/console`` (``create_console``; docs/console.md).

Plain HTML forms (POST, then redirect), no JavaScript needed and every asset in the package; the words in
zh-CN and en-US (``locales/``); sessions kept on the server; every action a person takes recorded in the
audit log with their name. No page shows personal data: accounts are known by id, and the customer's name,
number and loan reference never reach the console.
"""

from kindly.programs.console.app import ROUTERS, create_console

__all__ = ["ROUTERS", "create_console"]

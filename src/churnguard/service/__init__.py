"""The REST service: FastAPI over one churnguard project (docs/service.md).

``create_app(project, settings)`` builds the app; ``run(project_dir, host=..., port=...)``
serves it with uvicorn (what ``churnguard serve`` calls).
"""

from churnguard.service.app import create_app, run
from churnguard.service.settings import ServiceSettings, SettingsError

__all__ = ["ServiceSettings", "SettingsError", "create_app", "run"]

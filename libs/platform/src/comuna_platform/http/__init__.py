"""REST plumbing shared by every service's FastAPI app."""

from comuna_platform.http.app import ReadinessCheck, create_app

__all__ = ["ReadinessCheck", "create_app"]

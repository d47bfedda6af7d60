from comuna_platform.migrations import run_env
from comuna_projects.storage.models import Base

run_env(Base.metadata)

from comuna_funding.storage.models import Base
from comuna_platform.migrations import run_env

run_env(Base.metadata)

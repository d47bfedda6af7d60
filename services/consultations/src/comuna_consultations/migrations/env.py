from comuna_consultations.storage.models import Base
from comuna_platform.migrations import run_env

run_env(Base.metadata)

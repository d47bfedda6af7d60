"""gRPC transport of the projects service, called by other services with a service token."""

from __future__ import annotations

from typing import Any

import grpc

from comuna.projects.v1 import projects_pb2 as pb
from comuna.projects.v1 import projects_pb2_grpc
from comuna_platform.errors import NotFound
from comuna_platform.rpc import parse_id, require_service_caller
from comuna_platform.runtime import Runtime
from comuna_projects.domain.messages import project_message
from comuna_projects.storage import repository


class ProjectsServicer(projects_pb2_grpc.ProjectsServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def GetProject(self, request: pb.GetProjectRequest, context: Any) -> pb.Project:
        require_service_caller()
        project_id = parse_id(request.project_id, "project_id")
        async with self._runtime.db.transaction() as session:
            project = await repository.project_by_id(session, project_id)
            if project is None:
                raise NotFound(f"project {project_id} does not exist", code="project_not_found")
            milestones = await repository.milestones_of(session, project.id)
        return project_message(project, milestones)


def register(runtime: Runtime, server: grpc.aio.Server) -> list[str]:
    projects_pb2_grpc.add_ProjectsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        ProjectsServicer(runtime), server
    )
    return [pb.DESCRIPTOR.services_by_name["ProjectsService"].full_name]

"""gRPC transport of the projects service, called by other services with a service token."""

from __future__ import annotations

import grpc

from comuna.projects.v1 import projects_pb2 as pb
from comuna.projects.v1 import projects_pb2_grpc
from comuna_platform.grpc_uow import with_unit_of_work
from comuna_platform.ids import parse_id
from comuna_platform.rpc import require_service_caller
from comuna_platform.runtime import Runtime
from comuna_platform.uow import UnitOfWork
from comuna_projects.domain import projects
from comuna_projects.messages import project_message


class ProjectsServicer(projects_pb2_grpc.ProjectsServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.db = runtime.db

    @with_unit_of_work
    async def GetProject(self, request: pb.GetProjectRequest, uow: UnitOfWork) -> pb.Project:
        require_service_caller()
        view = await projects.project_view(uow, project_id=parse_id(request.project_id, "project_id"))
        return project_message(view.project, view.milestones)


def register(runtime: Runtime, server: grpc.aio.Server) -> list[str]:
    projects_pb2_grpc.add_ProjectsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        ProjectsServicer(runtime), server
    )
    return [pb.DESCRIPTOR.services_by_name["ProjectsService"].full_name]

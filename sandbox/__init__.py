"""A local VLM Run API: the same endpoints, real signed callbacks with retries, fault injection."""

from sandbox.app import create_sandbox_app
from sandbox.faults import FAULTS_HEADER, FaultPlan, parse_faults
from sandbox.settings import SandboxConfig

__all__ = ["FAULTS_HEADER", "FaultPlan", "SandboxConfig", "create_sandbox_app", "parse_faults"]

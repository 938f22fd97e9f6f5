"""The register step: ``spec`` declares it (light); ``executor`` talks to the MLflow registry."""

from convflow.components.register.spec import REGISTRATION_FILE, RegisterParams, register

__all__ = ["REGISTRATION_FILE", "RegisterParams", "register"]

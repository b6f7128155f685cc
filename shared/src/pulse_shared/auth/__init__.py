"""Sign-in and access checks for every Pulse HTTP surface (roles and scopes:
:mod:`pulse_shared.access`)."""

from pulse_shared.auth.asgi import (
    PUBLIC_PATHS,
    RoutePolicy,
    UnguardedRoute,
    guard,
    guard_routes,
    principal_of,
)
from pulse_shared.auth.authenticator import SESSION_COOKIE, Authenticator, Principal
from pulse_shared.auth.settings import AuthSettings
from pulse_shared.auth.users import User, UserDirectory, UserError

__all__ = [
    "PUBLIC_PATHS", "SESSION_COOKIE", "AuthSettings", "Authenticator", "Principal",
    "RoutePolicy", "UnguardedRoute", "User", "UserDirectory", "UserError", "guard",
    "guard_routes", "principal_of",
]

"""A page per user (`users/{name}`): the user's servers with the culler's outlook, their
sessions, culls, exemptions and the audit entries about them. It composes the capabilities'
read-only views, so it sits one layer above them (docs/architecture.md, "Layers")."""

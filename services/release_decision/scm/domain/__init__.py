"""Pure rules of the GitHub and GitLab integration: authenticating deliveries, reading their
payloads into events, and rendering a decision as a check run and a comment."""

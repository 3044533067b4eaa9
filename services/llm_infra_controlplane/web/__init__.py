"""The HTTP machinery every /v1 domain shares.

Problem answers (`problems`), RED metrics (`metrics`), path parameters
(`params`), the access dependency (`auth`) and the dependencies of app state
(`deps`). Domain packages import it; it imports no domain.
"""

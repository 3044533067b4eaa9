"""Access to the /v1 API, free of any web framework.

The policy (`policy`), authentication and authorization (`service`) and the
standalone admin key (`admin_key`); `web.auth` is the HTTP side.
"""

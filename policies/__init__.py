"""Gateway policies: one module each, a frozen msgspec config and the policy it builds."""

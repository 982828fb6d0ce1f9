"""User feedback on chat turns: the tokens that make the route safe, the feedback span, and the route itself."""

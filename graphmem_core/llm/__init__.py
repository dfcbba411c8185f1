"""Structured requests to an OpenAI-compatible chat model, with limits, retries and a response cache.

`client.LLMClient` sends requests through instructor and validates the output with Pydantic.
`cache` keys stored responses by model, prompt version and input text. `summaries` writes community
summaries with the same client. The modules import `openai` and `instructor` only when used.
"""

"""An MCP server (mcp 2.x ``MCPServer``) with the fixtures the conformance suite's server scenarios call, so that
`make conformance` exercises logging, progress, sampling and elicitation round trips with and without chatobs.

    python scripts/conformance_server.py --port 8770 [--no-chatobs]
"""

import argparse
import base64
import json
from typing import Any

# A 1x1 red PNG and a tiny WAV header: the content types, not the media, are under test.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082"
    )
).decode()
WAV = base64.b64encode(
    b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00D\xac\x00\x00\x88X\x01\x00\x02\x00\x10\x00data\x00\x00\x00\x00"
).decode()


def build() -> Any:
    import anyio
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import (
        AudioContent,
        Completion,
        EmbeddedResource,
        ImageContent,
        SamplingMessage,
        TextContent,
        TextResourceContents,
    )

    server = MCPServer(name="chatobs-conformance-server", version="1.0.0", log_level="WARNING")

    @server.tool(description="Returns simple text.")
    def test_simple_text() -> list[Any]:
        return [TextContent(type="text", text="This is a simple text response for testing.")]

    @server.tool(description="Returns an image.")
    def test_image_content() -> list[Any]:
        return [ImageContent(type="image", data=PNG, mime_type="image/png")]

    @server.tool(description="Returns audio.")
    def test_audio_content() -> list[Any]:
        return [AudioContent(type="audio", data=WAV, mime_type="audio/wav")]

    @server.tool(description="Returns an embedded resource.")
    def test_embedded_resource() -> list[Any]:
        res = TextResourceContents(
            uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
        )
        return [EmbeddedResource(type="resource", resource=res)]

    @server.tool(description="Returns text, image and resource content.")
    def test_multiple_content_types() -> list[Any]:
        res = TextResourceContents(
            uri="test://mixed-content-resource",
            mime_type="application/json",
            text=json.dumps({"test": "data", "value": 123}),
        )
        return [
            TextContent(type="text", text="Multiple content types test:"),
            ImageContent(type="image", data=PNG, mime_type="image/png"),
            EmbeddedResource(type="resource", resource=res),
        ]

    @server.tool(description="Sends three log messages while it runs.")
    async def test_tool_with_logging(ctx: Context) -> str:
        await ctx.info("Tool execution started")
        await anyio.sleep(0.05)
        await ctx.info("Tool processing data")
        await anyio.sleep(0.05)
        await ctx.info("Tool execution completed")
        return "Tool with logging executed successfully"

    @server.tool(description="Reports progress 0, 50, 100 of 100.")
    async def test_tool_with_progress(ctx: Context) -> str:
        for step in (0, 50, 100):
            await ctx.report_progress(step, 100)
            if step < 100:
                await anyio.sleep(0.05)
        return "Tool with progress executed successfully"

    @server.tool(description="Always fails.")
    def test_error_handling() -> str:
        raise ToolError("This tool intentionally returns an error for testing")

    @server.tool(description="Asks the client's LLM (sampling).")
    async def test_sampling(prompt: str, ctx: Context) -> str:
        result = await ctx.session.create_message(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
            max_tokens=100,
            related_request_id=ctx.request_id,
        )
        content = result.content
        text = content.text if isinstance(content, TextContent) else str(content)
        return f"LLM response: {text}"

    @server.tool(description="Asks the user (elicitation).")
    async def test_elicitation(message: str, ctx: Context) -> str:
        schema = {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        }
        result = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
        return f"User response: action={result.action}, content={json.dumps(result.content)}"

    @server.tool(description="Elicitation with defaults for every primitive type (SEP-1034).")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        schema = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "default": "John Doe"},
                "age": {"type": "integer", "default": 30},
                "score": {"type": "number", "default": 95.5},
                "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
                "verified": {"type": "boolean", "default": True},
            },
        }
        result = await ctx.session.elicit_form(
            "Please review and update the form fields with defaults", schema, related_request_id=ctx.request_id
        )
        return f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"

    @server.tool(description="Elicitation with every enum variant (SEP-1330).")
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        schema = {
            "type": "object",
            "properties": {
                "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                "titledSingle": {
                    "type": "string",
                    "oneOf": [
                        {"const": "value1", "title": "First Option"},
                        {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"},
                    ],
                },
                "legacyEnum": {
                    "type": "string",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                },
                "titledMulti": {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"},
                        ]
                    },
                },
            },
        }
        result = await ctx.session.elicit_form("Please select options", schema, related_request_id=ctx.request_id)
        return f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"

    @server.resource(
        "test://static-text", name="static-text", description="A static text resource.", mime_type="text/plain"
    )
    def static_text() -> str:
        return "This is the content of the static text resource."

    @server.resource(
        "test://static-binary", name="static-binary", description="A static binary resource.", mime_type="image/png"
    )
    def static_binary() -> bytes:
        return base64.b64decode(PNG)

    @server.resource(
        "test://watched-resource",
        name="watched-resource",
        description="A resource to subscribe to.",
        mime_type="text/plain",
    )
    def watched() -> str:
        return "Watched resource content."

    @server.resource(
        "test://template/{id}/data", name="template", description="A templated resource.", mime_type="application/json"
    )
    def templated(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @server.prompt(description="A simple prompt.")
    def test_simple_prompt() -> str:
        return "This is a simple prompt for testing."

    @server.prompt(description="A prompt with two arguments.")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
        return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"

    @server.prompt(description="A prompt embedding a resource.")
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[Any]:  # the suite's argument name
        res = TextResourceContents(
            uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
        )
        return [
            {"role": "user", "content": EmbeddedResource(type="resource", resource=res)},
            {"role": "user", "content": TextContent(type="text", text="Please process the embedded resource above.")},
        ]

    @server.prompt(description="A prompt with an image.")
    def test_prompt_with_image() -> list[Any]:
        return [
            {"role": "user", "content": ImageContent(type="image", data=PNG, mime_type="image/png")},
            {"role": "user", "content": TextContent(type="text", text="Please analyze the image above.")},
        ]

    @server.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> Any:
        return Completion(values=[], total=0, has_more=False)

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8770)
    parser.add_argument("--no-chatobs", action="store_true")
    args = parser.parse_args()
    server = build()
    if not args.no_chatobs:
        import chatobs

        chatobs.instrument_mcp_server(server)
    server.run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()

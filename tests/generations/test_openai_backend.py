"""The OpenAI-compatible backend against a local fake endpoint speaking the same wire format."""

import pytest

from generations.backends import BackendRequest, PermanentBackendError, RetryableBackendError
from generations.backends.openai import OpenAICompatibleBackend

from .conftest import USER_KEY
from .fake_openai import Answer, tiny_png


def text_request(prompt="Write a haiku about tea", **extra):
    defaults = dict(
        job_id=1,
        operation="text",
        model="test-chat",
        tier="",
        prompt=prompt,
        parameters={"max_output_tokens": 300},
    )
    return BackendRequest(**{**defaults, **extra})


def test_text_comes_back_with_the_token_usage_reported(openai_settings):
    fake = openai_settings
    output = OpenAICompatibleBackend().run(text_request())
    assert output.extension == "txt"
    assert output.content.decode().startswith("Here is your text about: Write a haiku about tea")
    assert output.usage["output_tokens"] == 42
    assert output.usage["input_tokens"] > 0
    sent = fake.calls("/v1/chat/completions")[0]
    assert sent.body["model"] == "test-chat"
    assert sent.body["max_tokens"] == 300
    assert sent.body["messages"][-1] == {"role": "user", "content": "Write a haiku about tea"}
    assert sent.headers["Authorization"] == "Bearer sk-platform-test-0001"


def test_an_edit_sends_the_text_being_revised(openai_settings):
    OpenAICompatibleBackend().run(
        text_request("Make it shorter", is_edit=True, source_text="A long old text.")
    )
    sent = openai_settings.calls()[0].body["messages"]
    assert "A long old text." in sent[-1]["content"] and "Make it shorter" in sent[-1]["content"]


def test_the_users_own_key_is_used_when_given(openai_settings):
    OpenAICompatibleBackend().run(text_request(api_key=USER_KEY))
    assert openai_settings.calls()[0].headers["Authorization"] == f"Bearer {USER_KEY}"


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_server_errors_and_rate_limits_are_retryable(openai_settings, status):
    openai_settings.script(Answer(status=status, headers={"Retry-After": "7"}))
    with pytest.raises(RetryableBackendError) as caught:
        OpenAICompatibleBackend().run(text_request())
    assert f"HTTP {status}" in caught.value.message
    assert caught.value.retry_after == 7


def test_a_rejected_request_is_permanent_and_says_why(openai_settings):
    openai_settings.script(
        Answer(
            status=400,
            body={
                "error": {
                    "message": "max_tokens is too large: 99999.",
                    "type": "invalid_request_error",
                }
            },
        )
    )
    with pytest.raises(PermanentBackendError) as caught:
        OpenAICompatibleBackend().run(text_request())
    assert "HTTP 400" in caught.value.message and "max_tokens is too large" in caught.value.message


def test_a_wrong_key_is_permanent(openai_settings):
    with pytest.raises(PermanentBackendError, match="API key was rejected"):
        OpenAICompatibleBackend().run(text_request(api_key="sk-wrong-key-123"))


def test_a_slow_answer_times_out_and_may_be_retried(openai_settings, settings):
    settings.OPENAI_TIMEOUT = "0.5"
    openai_settings.script(Answer(delay=2))
    with pytest.raises(RetryableBackendError, match="did not answer in time"):
        OpenAICompatibleBackend().run(text_request())


def test_an_unreachable_endpoint_is_retryable(settings):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    settings.OPENAI_API_KEY = "sk-x-12345678"
    with pytest.raises(RetryableBackendError, match="could not be reached"):
        OpenAICompatibleBackend().run(text_request())


def test_a_garbled_answer_is_permanent(openai_settings):
    openai_settings.script(
        Answer(raw=b"<html>proxy error</html>", headers={"Content-Type": "text/html"})
    )
    with pytest.raises(PermanentBackendError, match="could not be read"):
        OpenAICompatibleBackend().run(text_request())


def test_pictures_are_decoded_and_checked(openai_settings):
    output = OpenAICompatibleBackend().run(
        BackendRequest(
            job_id=1,
            operation="image",
            model="test-image",
            tier="",
            prompt="a red square",
            parameters={"size": "1024x1024"},
        )
    )
    assert output.extension == "png" and output.content == tiny_png()
    sent = openai_settings.calls("/v1/images/generations")[0].body
    assert sent == {"model": "test-image", "prompt": "a red square", "n": 1, "size": "1024x1024"}


def test_a_base_url_ending_in_v1_is_not_doubled(openai_settings, settings):
    settings.OPENAI_BASE_URL = openai_settings.url + "/v1"
    OpenAICompatibleBackend().run(text_request())
    assert openai_settings.calls()[0].path == "/v1/chat/completions"

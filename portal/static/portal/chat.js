// The chat playground of a generative model: it calls the OpenAI-compatible API (/v1/chat/completions)
// with the page's session, streaming, and shows the tokens as they come, then usage and the receipt.
// Its words come from Django's JavaScript catalogue (/jsi18n/: gettext, interpolate), in the page's language.
(() => {
  const form = document.querySelector("[data-chat-form]");
  if (!form) return;
  const log = document.querySelector("[data-chat-log]");
  const status = document.querySelector("[data-chat-status]");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const conversation = [];

  function bubble(role, text) {
    const item = document.createElement("div");
    item.className = `chat-message ${role}`;
    item.dataset.role = role;
    const who = document.createElement("strong");
    // EU AI Act Art. 50: a person must be able to tell text a model made
    who.textContent = role === "user" ? gettext("You") : gettext("Assistant (AI-generated)");
    const body = document.createElement("p");
    body.textContent = text;
    item.append(who, body);
    log.append(item);
    item.scrollIntoView({block: "end"});
    return body;
  }

  function receipt(item, steward, usage) {
    const line = document.createElement("p");
    line.className = "hint chat-receipt";
    line.dataset.testid = "chat-receipt";
    const link = document.createElement("a");
    link.href = `/completions/${steward.completion}/`;
    link.textContent = interpolate(gettext("completion #%s"), [steward.completion]);
    const tokens = usage ? interpolate(gettext("%(prompt)s prompt + %(completion)s completion tokens"),
      {prompt: usage.prompt_tokens, completion: usage.completion_tokens}, true) + " · " : "";
    line.append(link, " · " + tokens +
      interpolate(gettext("receipt: log entry #%(index)s, leaf %(leaf)s…"),
        {index: steward.receipt.index, leaf: steward.receipt.leaf_hash.slice(0, 12)}, true) +
      (steward.cut_off ? " · " + gettext("cut off") : ""));
    if (steward.guard && steward.guard.outcome) {
      // the organisation's guardrails stopped or flagged this answer: say so beside it
      const guard = document.createElement("strong");
      guard.dataset.testid = "chat-guard";
      guard.textContent = " · " + (steward.guard.outcome === "filtered"
        ? gettext("stopped by the guardrail policy (content_filter)")
        : steward.guard.outcome === "flagged" ? gettext("flagged by the guardrail policy")
          : interpolate(gettext("%s by the guardrail policy"), [steward.guard.outcome]));
      line.append(guard);
    }
    item.parentElement.append(line);
    if (steward.language) {
      // the prompt looks like a language the model card does not list: answered, but said so
      const notice = document.createElement("div");
      notice.className = "msg warning";
      notice.dataset.testid = "language-notice";
      notice.setAttribute("role", "status");
      notice.textContent = steward.language.message;
      item.parentElement.append(notice);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = form.querySelector("[name=message]");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    conversation.push({role: "user", content: text});
    bubble("user", text);
    const answer = bubble("assistant", "");
    const system = form.querySelector("[name=system]").value.trim();
    const body = {
      model: form.dataset.model, stream: true, stream_options: {include_usage: true},
      messages: system ? [{role: "system", content: system}, ...conversation] : conversation,
      temperature: parseFloat(form.querySelector("[name=temperature]").value),
      max_tokens: parseInt(form.querySelector("[name=max_tokens]").value, 10),
    };
    const send = form.querySelector("button[type=submit]");
    send.disabled = true;
    status.textContent = gettext("Generating…");
    let steward = null, usage = null, failed = null;
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf}, body: JSON.stringify(body),
      });
      if (!response.ok) {
        failed = ((await response.json()).error || {}).message
          || interpolate(gettext("The request failed (%s)."), [response.status]);
      } else {
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffered = "";
        for (;;) {
          const {value, done} = await reader.read();
          if (done) break;
          buffered += decoder.decode(value, {stream: true});
          let end;
          while ((end = buffered.indexOf("\n\n")) >= 0) {
            const line = buffered.slice(0, end).replace(/^data: /, "");
            buffered = buffered.slice(end + 2);
            if (line === "[DONE]") continue;
            const chunk = JSON.parse(line);
            if (chunk.error) { failed = chunk.error.message; continue; }
            if (chunk.steward) steward = chunk.steward;
            if (chunk.usage) usage = chunk.usage;
            for (const choice of chunk.choices || []) {
              if (choice.delta && choice.delta.content) answer.textContent += choice.delta.content;
            }
          }
        }
      }
    } catch (error) {
      failed = gettext("The connection to the portal was lost.");
    }
    if (failed) {
      answer.textContent = failed;
      answer.parentElement.classList.add("error");
      conversation.pop();
    } else {
      conversation.push({role: "assistant", content: answer.textContent});
      if (steward) receipt(answer.parentElement, steward, usage);
    }
    status.textContent = "";
    send.disabled = false;
    input.focus();
  });
})();

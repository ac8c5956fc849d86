"""The portal in English and Simplified Chinese: the catalogues compile without GNU gettext, the check
finds unmarked template text and incomplete catalogues, and the language follows the browser, the
switcher (remembered per user) and, for the API, Accept-Language."""

from __future__ import annotations

import gettext
import json
import os
import re
import shutil
from pathlib import Path

import polib
import pytest
from django.test import Client, override_settings

from portal.accounts.roles import Role
from portal.platform import translations
from tests.portal.accounts.factories import PASSWORD, OrganizationFactory, member

BOTH = [("en-gb", "English"), ("zh-hans", "简体中文")]


def test_a_catalogue_compiles_with_polib_and_reads_as_gettext_reads_it(tmp_path) -> None:
    folder = tmp_path / "zh_Hans" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    catalogue = polib.POFile()
    catalogue.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Plural-Forms": "nplurals=1; plural=0;"}
    catalogue.append(polib.POEntry(msgid="Audit log", msgstr="审计日志"))
    catalogue.append(polib.POEntry(msgid="%(n)s entry.", msgid_plural="%(n)s entries.", msgstr_plural={0: "共 %(n)s 条。"}))
    catalogue.save(str(folder / "django.po"))

    assert translations.compile_catalogues(tmp_path) == [folder / "django.mo"]
    read = gettext.GNUTranslations((folder / "django.mo").open("rb"))
    assert read.gettext("Audit log") == "审计日志"
    assert read.ngettext("%(n)s entry.", "%(n)s entries.", 5) == "共 %(n)s 条。"
    assert translations.compile_catalogues(tmp_path) == []  # unchanged: not written again
    later = (folder / "django.mo").stat().st_mtime + 5
    os.utime(folder / "django.po", (later, later))
    assert translations.compile_catalogues(tmp_path) == [folder / "django.mo"]


def test_the_check_finds_the_text_a_reader_sees_that_is_not_marked(tmp_path) -> None:
    template = tmp_path / "page.html"
    template.write_text(
        '{% load i18n %}<h1>{% translate "Models" %}</h1>\n'
        '<p>You have {{ count }} tokens.</p>\n'
        '<a href="{% url \'x\' %}" title="Open the log">{{ name }}</a>\n'
        '{% blocktranslate trimmed %}Already <b>marked</b> {{ name }}{% endblocktranslate %}\n'
        '<script>const label = "not for readers";</script>{# a comment #}{% comment %}Not shown{% endcomment %}\n'
        '<button name="answer" value="accept">{% translate "Accept" %}</button><input type="submit" value="Send now">\n'
        '<span>Steward · SHAP · API</span><span>{{ a }} · {{ b }}</span>\n'
    )
    found = translations.unmarked_strings(template, name="page.html")
    assert [(item.line, item.text) for item in found] == [
        (2, "You have {{…}} tokens."),
        (3, "Open the log"),
        (6, "Send now"),
    ]
    assert str(found[0]) == "page.html:2: 'You have {{…}} tokens.' is not marked for translation"


def test_every_template_outside_the_pending_list_is_marked_and_the_list_only_shrinks() -> None:
    assert translations.template_problems() == []
    pending = translations.pending_templates()
    templates = {str(path.relative_to(translations.ROOT)) for path in translations.TEMPLATES.rglob("*.html")}
    assert pending <= templates
    assert "templates/base.html" not in pending and "templates/portal/login.html" not in pending


def test_a_pending_template_with_nothing_left_to_mark_must_be_struck_from_the_list() -> None:
    problems = translations.template_problems(pending=translations.pending_templates() | {"templates/base.html"})
    assert problems == ["templates/base.html: every string is marked: strike it from pending-templates.txt"]


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="GNU gettext is needed to extract messages")
def test_the_catalogue_check_finds_missing_fuzzy_untranslated_and_obsolete_entries(tmp_path) -> None:
    assert translations.catalogue_problems(["zh_Hans"]) == []  # the repository's catalogue is complete

    root = tmp_path / "steward"
    shutil.copytree(translations.ROOT, root, ignore=shutil.ignore_patterns(
        ".venv", "var", "__pycache__", ".git", "*.mo", "bench", "tests", "node_modules"), symlinks=True)
    path = root / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
    catalogue = polib.pofile(str(path))
    by_id = {entry.msgid: entry for entry in catalogue}
    catalogue.remove(by_id["Audit log"])
    by_id["Sign out"].flags.append("fuzzy")
    by_id["Password"].msgstr = ""
    by_id["Job %(number)s queued: %(rows)s rows."].msgstr = "任务 %(numbr)s 已排队：%(rows)s 行。"  # a name it invented
    catalogue.append(polib.POEntry(msgid="A sentence the code no longer has", msgstr="代码里已没有的句子"))
    catalogue.save(str(path))

    found = {(problem.kind, problem.msgid) for problem in translations.catalogue_problems(["zh_Hans"], root=root)}
    assert found == {("missing", "Audit log"), ("fuzzy", "Sign out"), ("untranslated", "Password"),
                     ("obsolete", "A sentence the code no longer has"),
                     ("placeholders", "Job %(number)s queued: %(rows)s rows.")}


def test_both_languages_are_offered_by_default_and_an_operator_may_offer_english_alone(client) -> None:
    from django.conf import settings

    assert [code for code, _ in settings.LANGUAGES] == ["en-gb", "zh-hans"]  # the default (STEWARD_LANGUAGES)
    html = client.get("/login/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode()
    assert '<html lang="zh-hans">' in html and 'data-testid="language-switch"' in html
    with override_settings(LANGUAGES=[("en-gb", "English")]):
        page = client.get("/login/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    html = page.content.decode()
    assert page.status_code == 200 and '<html lang="en-gb">' in html and "Sign in to Steward" in html
    assert 'data-testid="language-switch"' not in html


@override_settings(LANGUAGES=BOTH)
def test_the_sign_in_page_follows_the_browsers_language(client) -> None:
    page = client.get("/login/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.5")
    html = page.content.decode()
    assert '<html lang="zh-hans">' in html and "登录 Steward" in html and "审计日志" in html
    assert 'data-testid="language-switch"' in html and page["Content-Language"] == "zh-hans"
    english = client.get("/login/", HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9").content.decode()
    assert "Sign in to Steward" in english and "登录" not in english


@override_settings(LANGUAGES=BOTH)
def test_the_switcher_is_remembered_on_the_user_in_any_browser(db) -> None:
    org = OrganizationFactory(name="Acme Bank")
    ada = member(Role.OWNER, org, username="ada")
    first = Client()
    assert first.login(username="ada", password=PASSWORD)
    answer = first.post("/language/", {"language": "zh-hans", "next": "/tokens/"})
    assert answer.status_code == 302 and answer["Location"] == "/tokens/"
    ada.refresh_from_db()
    assert ada.language == "zh-hans"

    elsewhere = Client()  # another browser, which asks for English
    assert elsewhere.login(username="ada", password=PASSWORD)
    dashboard = elsewhere.get("/", HTTP_ACCEPT_LANGUAGE="en-GB").content.decode()
    assert '<html lang="zh-hans">' in dashboard and "您在此的角色是" in dashboard and "概览" in dashboard

    elsewhere.post("/language/", {"language": "en-gb", "next": "/"})
    assert "You are <strong>" in elsewhere.get("/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()


@override_settings(LANGUAGES=BOTH)
def test_a_language_not_offered_is_a_400_that_changes_nothing(db) -> None:
    ada = member(Role.OWNER, OrganizationFactory(), username="ada")
    browser = Client()
    browser.login(username="ada", password=PASSWORD)
    for code in ("klingon", "fr", ""):
        answer = browser.post("/language/", {"language": code, "next": "/"})
        assert answer.status_code == 400 and "That language is not offered here." in answer.content.decode()
    ada.refresh_from_db()
    assert ada.language == "" and "django_language" not in browser.cookies
    away = browser.post("/language/", {"language": "en-gb", "next": "https://elsewhere.example/"})
    assert away["Location"] == "/"  # never a redirect off the portal


@override_settings(LANGUAGES=BOTH)
def test_the_api_follows_accept_language_and_keeps_its_codes(db) -> None:
    api = Client()
    chinese = api.get("/api/v1/models", HTTP_ACCEPT_LANGUAGE="zh-CN")
    english = api.get("/api/v1/models", HTTP_ACCEPT_LANGUAGE="en")
    assert chinese.status_code == english.status_code == 401
    assert chinese.json()["error"]["code"] == english.json()["error"]["code"] == "not_authenticated"
    assert chinese.json()["error"]["message"] != english.json()["error"]["message"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese.json()["error"]["message"])
    assert chinese["Content-Language"] == "zh-hans" and "Accept-Language" in chinese["Vary"]
    # a token the portal does not know: refused in the caller's language, with the same code
    bad = {"HTTP_AUTHORIZATION": "Bearer not-a-token"}
    chinese = api.get("/api/v1/models", HTTP_ACCEPT_LANGUAGE="zh-CN", **bad).json()["error"]
    english = api.get("/api/v1/models", HTTP_ACCEPT_LANGUAGE="en", **bad).json()["error"]
    assert chinese["code"] == english["code"] and english["message"] == "This API token is not valid."
    assert chinese["message"] == "此 API 令牌无效。"


def test_every_catalogue_in_the_repository_compiles() -> None:
    # The repository's catalogues compile as `make run` compiles them (a copy: the checkout's .mo stay as they are).
    assert sorted(Path(translations.LOCALE).glob("*/LC_MESSAGES/djangojs.po"))
    for po_path in Path(translations.LOCALE).glob("*/LC_MESSAGES/*.po"):
        entries = polib.pofile(str(po_path))
        assert entries.percent_translated() == 100 and not entries.fuzzy_entries()


@override_settings(LANGUAGES=BOTH)
def test_the_scripts_words_come_in_the_pages_language(client) -> None:
    chinese = client.get("/jsi18n/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    english = client.get("/jsi18n/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    def escaped(text: str) -> str:  # the catalogue is JavaScript with \\u escapes
        return json.dumps(text)[1:-1]

    assert escaped("生成中…") in chinese and escaped("与门户的连接已断开。") in chinese  # chat.js's words
    assert "django.gettext" in english and escaped("生成中…") not in english


@override_settings(LANGUAGES=BOTH)
def test_a_refusal_of_the_api_reads_in_the_callers_language(tabular) -> None:
    from tests.inference.factories import bearer_client

    api = bearer_client(tabular, "consumer")
    chinese = api.get("/api/v1/models/nosuch", HTTP_ACCEPT_LANGUAGE="zh-CN")
    english = api.get("/api/v1/models/nosuch", HTTP_ACCEPT_LANGUAGE="en")
    assert chinese.status_code == english.status_code == 404
    assert chinese.json()["error"]["code"] == english.json()["error"]["code"]
    assert chinese.json()["error"]["message"] == "本组织中没有名为 'nosuch' 的模型。"
    assert english.json()["error"]["message"] == "No model named 'nosuch' in this organisation."
    # an input that does not fit the model's schema: refused by the ML layer's check, in the caller's language
    rows = {"inputs": [{"income": "lots", "region": "north"}]}
    chinese = api.post("/api/v1/models/credit/predict", rows, format="json", HTTP_ACCEPT_LANGUAGE="zh-CN")
    english = api.post("/api/v1/models/credit/predict", rows, format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert chinese.status_code == english.status_code == 400
    assert chinese.json()["error"]["code"] == english.json()["error"]["code"]
    assert english.json()["error"]["message"].startswith("Some inputs do not fit the model's input schema")
    assert chinese.json()["error"]["message"].startswith("部分输入不符合模型的输入模式")


def test_every_stage_a_worker_writes_is_said_in_the_readers_language() -> None:
    """A job's stage is stored as words by the worker and read through `stage_label`: each one the code
    writes must be in its table (else it would show in English), and the table translated."""
    import re

    from django.utils import translation

    from audit.exports.services import STAGES as EXPORT_STAGES
    from portal.templatetags.steward import STAGES

    root = Path(__file__).resolve().parents[2]
    written = set(EXPORT_STAGES)
    for path in [root / "inference/services/compressions.py", root / "inference/services/canary_audits.py",
                 root / "inference/ml/canaries.py", root / "audit/exports/services.py"]:
        written |= set(re.findall(r'stage[=(]"([^"]+)"', path.read_text()))
    assert written and written <= set(STAGES), written - set(STAGES)
    with translation.override("zh-hans"):
        untranslated = [stage for stage in written if str(STAGES[stage]) == stage]
    assert untranslated == []


def test_the_charts_speak_the_readers_language() -> None:
    """Charts are drawn when a page is read (no stored words): titles, axes' marks and hover texts translate."""
    from django.utils import translation

    from audit.fairness.charts import selection_rate_chart
    from inference.charts import usage_columns, waterfall

    explanation = {"labels": ["no", "yes"], "label": "yes", "base_values": [0.6, 0.4], "output": [0.3, 0.7],
                   "features": ["income", "region"], "feature_values": ["5", "north"],
                   "values": [[-0.2, 0.2], [-0.1, 0.1]]}
    axis = {"axis": "sex", "groups": [
        {"group": "female", "count": 40, "too_small": False, "selection_rate": 0.3, "selection_rate_ci95": [0.2, 0.4]},
        {"group": "male", "count": 60, "too_small": False, "selection_rate": 0.6, "selection_rate_ci95": [0.5, 0.7]}]}
    daily = [{"day": "2026-12-01", "rows": 3, "requests": 2}, {"day": "2026-12-02", "rows": 5, "requests": 4}]
    with translation.override("zh-hans"):
        drawn = str(waterfall(explanation)) + str(selection_rate_chart(axis)) + str(usage_columns(daily))
    for chinese in ("基准值 E[f(x)]", "各特征如何改变 yes 的概率", "推向 yes", "五分之四线 0.48", "低于五分之四线",
                    "按sex划分的选择率", "5 行，4 次请求", "每日处理行数"):
        assert chinese in drawn, chinese
    for english in ("base value", "four-fifths", "selection rate", "How each feature", "rows served"):
        assert english not in drawn.lower(), english


def test_a_versions_evidence_is_said_in_the_readers_language(tabular) -> None:
    """The model card's evidence (and the reasons a reviewer is given) is worded when it is read."""
    from django.utils import translation

    from audit.fairness.models import FairnessPolicy
    from inference.evidence import version_evidence

    FairnessPolicy.objects.update_or_create(organization=tabular.org, defaults={"require_passing_report": True})
    with translation.override("zh-hans"):
        chinese = {e.title: e for e in version_evidence(tabular.version)}
    english = {e.title: e for e in version_evidence(tabular.version)}
    assert {"偏见报告", "合规导出"} <= set(chinese) and {"Bias report", "Compliance export"} <= set(english)
    assert chinese["偏见报告"].summary == "暂无" and "要求在批准前有一份通过的偏见报告" in chinese["偏见报告"].reason
    assert english["Bias report"].reason.startswith("This organisation requires a passing bias report")


def test_dates_are_written_as_each_language_writes_them(tabular) -> None:
    """ISO 8601 in English (evidence is compared and sorted), 年月日 in Chinese: the pages name the formats."""
    from datetime import UTC, datetime

    from django.template import Context, Template
    from django.utils import timezone, translation

    from audit.exports.pdf import when

    instant = datetime(2026, 12, 4, 14, 5, 9, tzinfo=UTC)
    shown = Template('{{ t|date:"DATETIME_FORMAT" }}|{{ t|date:"DATE_FORMAT" }}|{{ t|date:"SHORT_DATETIME_FORMAT" }}')
    with translation.override("en-gb"):
        assert shown.render(Context({"t": instant})) == "2026-12-04 14:05|2026-12-04|2026-12-04 14:05:09"
        assert when("2026-12-04T14:05:09.5+00:00") == "2026-12-04 14:05" and when("2026-12-04") == "2026-12-04"
    with translation.override("zh-hans"):
        assert shown.render(Context({"t": instant})) == "2026年12月4日 14:05|2026年12月4日|2026年12月4日 14:05:09"
        assert when("2026-12-04T14:05:09Z", seconds=True) == "2026年12月4日 14:05:09"
    # a page: the members' list says the day each joined
    reader = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    reader.force_login(tabular.actors["admin"].user)
    with override_settings(LANGUAGES=[("en-gb", "English"), ("zh-hans", "简体中文")]):
        page = reader.get("/members/").content.decode()
    today = timezone.localdate()
    assert f"{today.year}年{today.month}月{today.day}日" in page and today.isoformat() not in page


def test_a_sentence_a_worker_stored_in_english_is_said_in_the_readers_language() -> None:
    """A job's error is stored as the worker wrote it (English, no reader); the page says it again from the
    catalogue's message it was made of, values kept, or shows it as stored when the catalogue lacks it."""
    from django.utils import translation

    from inference.ml.words import _ as ml_words
    from portal.platform.said import said

    stored = ml_words("the archive holds more than %(max_members)s files") % {"max_members": 2000}
    nested = "The CSV file is not readable (line 7: a field is longer than 131,072 characters)."
    with translation.override("zh-hans"):
        assert said(stored) == "归档包含超过 2000 个文件"
        assert said("No generation worker is running; try again shortly.") == "没有正在运行的生成工作进程；请稍后重试。"
        assert said(nested) == "CSV 文件无法读取（第 7 行：某个字段超过 131,072 个字符）。"
        assert said("CUDA error: an illegal memory access") == "CUDA error: an illegal memory access"
    with translation.override("en-gb"):
        assert said(stored) == stored


def test_every_fairness_metric_has_a_name_in_both_languages(tabular) -> None:
    """A metric a policy can set has a reader's name (the policy page, the report, the PDF); its identifier,
    the key of the downloads, stays beside it."""
    from audit.fairness.metrics import DEFAULT_THRESHOLDS, METRIC_WORDS

    assert set(METRIC_WORDS) == set(DEFAULT_THRESHOLDS)
    admin = tabular.actors["admin"].user
    admin.language = "zh-hans"
    admin.save()
    reader = Client()
    reader.force_login(admin)
    page = reader.get("/settings/fairness/").content.decode()
    for name in ("人口统计均等比率", "身份词翻转率", "有害率差距", "刻板印象偏好差距"):
        assert name in page, name
    assert 'name="demographic_parity_ratio.warn"' in page and "demographic parity" not in page.lower()


def test_the_forms_choices_and_a_compressions_methods_read_in_chinese() -> None:
    """Choices and help texts made once in a module (the report form's datasets and domains, the compression
    methods) are catalogue messages, read in the reader's language; what is stored keeps the English."""
    from django.utils import translation

    from audit.fairness.ui.views import ReportForm
    from inference.ml import compression

    with translation.override("zh-hans"):
        form = ReportForm(task="text-generation")
        domains = dict(form.fields["domain"].choices)
        datasets = dict(form.fields["dataset"].choices)
        assert domains["religious_ideology"] == "宗教信仰" and datasets["upload"] == "上传文件"
        assert datasets["demo-bold"].startswith("某一领域的 BOLD 提示")
        assert str(form.fields["file"].help_text).startswith("探测：含 group、prompt 两列的 CSV")
        assert translation.gettext(compression.METHODS[compression.ONNX_METHOD]).startswith("分类器的计算图导出为 ONNX")
    assert compression.METHODS[compression.ONNX_METHOD].startswith("the classifier's graph")  # as stored


HALF_TRANSLATED = re.compile(r"[\u4e00-\u9fff][.,:;](\s|$)")


def test_every_page_a_member_reaches_ends_its_chinese_sentences_in_chinese(tabular) -> None:
    """Every page each role reaches by following links from the dashboard, read in Chinese: no English
    full stop, comma, colon or semicolon after a Chinese character (a sentence put together from a translated
    piece and punctuation outside it)."""
    from lxml import html

    skip = re.compile(r"/logout|/download|/api/|\.(zip|pdf|csv|json|png|svg)$|/static/|/jsi18n|\?file=")
    reached = 0
    for role in Role:
        user = tabular.actors[role.value].user
        user.language = "zh-hans"
        user.save()
        reader = Client()
        reader.force_login(user)
        seen: set[str] = set()
        queue = ["/"]
        while queue:
            url = queue.pop(0)
            if url in seen:
                continue
            seen.add(url)
            response = reader.get(url)
            assert response.status_code < 500, url
            if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
                continue
            reached += 1
            page = html.fromstring(response.content.decode())  # a fragment declares no charset
            queue += [href.split("#")[0] for href in page.xpath("//a/@href | //@hx-get")  # and the parts htmx loads
                      if href.startswith("/") and not skip.search(href)]
            text = re.sub(r"[ \t]+", " ", " ".join((page.xpath("//main") or [page])[0].itertext()))  # a part: whole
            found = HALF_TRANSLATED.search(text)
            assert found is None, f"{url}: …{text[max(0, found.start() - 60):found.end() + 20]}…"
    assert reached > 40

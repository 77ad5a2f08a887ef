"""Break the code one way at a time and check that the tests guarding it fail.

    python tools/mutate.py [part of a mutation's name ...]
    python tools/mutate.py --quick     # the sample .ci/run runs

Each mutation replaces one exact piece of code (which must occur once) in a throwaway copy of
the working tree, runs the tests named beside it there, and reports CAUGHT (they failed, or
hung) or MISSED. A MISSED line means the promise it names is not guarded: strengthen the test,
not the list. The working tree itself is never touched. Mutations whose name mentions 1.39
run under .venv-oldest (the lower bounds of .ci/run) when it exists.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent

MUTATIONS = [
    (
        "queued behind a backlog, warned as late",
        "posthog_otel/_delivery/line.py",
        '        if why == "behind":',
        "        if False:",
        "tests/test_spool.py::test_batches_queued_behind_another_process_backlog_are_not_called_late",
    ),
    (
        "export waits for delivery",
        "posthog_otel/_exporter.py",
        "        if ok and not threading.current_thread().name.startswith(_OWN_THREADS):",
        "        if ok:",
        "tests/test_delivery.py::test_export_returns_while_posthog_holds_the_request",
    ),
    (
        "backoff never resets",
        "posthog_otel/_delivery/schedule.py",
        "            self._backoff.succeeded()\n",
        "            pass\n",
        "tests/test_delivery.py::test_backoff_starts_over_after_any_success",
    ),
    (
        "SDK queue drops not counted",
        "posthog_otel/_delivery/handoff.py",
        '    if lost:\n        count_drop("otel_queue_full", lost)',
        '    if False:\n        count_drop("otel_queue_full", lost)',
        "tests/test_delivery.py::test_what_the_sdks_queue_drops_is_counted",
    ),
    (
        "log lock kept at fork",
        "posthog_otel/_log.py",
        "@_state.at_fork\ndef after_fork() -> None:\n",
        "def after_fork() -> None:\n",
        "tests/test_processes.py::test_a_child_forked_while_our_locks_are_held_delivers_and_exits",
    ),
    (
        "dispatcher lock kept at fork",
        "posthog_otel/_delivery/board.py",
        "        self.cond = threading.Condition()\n        self._reset()",
        "        self._reset()",
        "tests/test_processes.py::test_a_child_forked_while_our_locks_are_held_delivers_and_exits",
    ),
    (
        "no multiprocessing finalizer",
        "posthog_otel/_lifecycle.py",
        "        _watch_multiprocessing()\n",
        "",
        "tests/test_processes.py::test_multiprocessing_children_deliver_what_they_emit",
    ),
    (
        "SIGTERM raises SystemExit",
        "posthog_otel/_sigterm.py",
        "    os.kill(os.getpid(), signal.SIGTERM)  # end as the default disposition would have",
        "    raise SystemExit(143)",
        "tests/test_spool.py::test_sigterm_spools_the_queue_then_ends_the_process_as_the_default_would",
    ),
    (
        "owners always alive",
        "posthog_otel/_delivery/spool_owners.py",
        '        if not re.fullmatch(r"[0-9a-f]{16}", owner):\n            return False',
        "        return True",
        "tests/test_spool.py::test_a_claim_of_a_live_process_is_respected_and_of_a_dead_one_released",
    ),
    (
        "keys from the wall clock",
        "posthog_otel/_delivery/spool.py",
        "                key = max(self._files.largest_key(), self._last_key) + 1",
        "                key = time.time_ns() // 1000",
        "tests/test_spool.py::test_order_does_not_follow_the_wall_clock",
    ),
    (
        "in-flight shipment never spilled",
        "posthog_otel/_delivery/line.py",
        "        if late or shipment is not None and shipment.in_memory and now - shipment.born >= spool_after:",
        "        if late:",
        "tests/test_delivery.py::test_a_request_posthog_holds_is_spooled_after_spool_after",
    ),
    (
        "answers not scrubbed",
        "posthog_otel/_config.py",
        '    if api_key:\n        text = text.replace(api_key, redact(api_key) or "")',
        '    return text\n    if api_key:\n        text = text.replace(api_key, redact(api_key) or "")',
        "tests/test_delivery.py::test_a_page_that_echoes_the_key_never_puts_it_in_the_log",
    ),
    (
        "memory unbounded without a spool",
        "posthog_otel/_delivery/line.py",
        "        if self._spool.usable(now):\n            return\n        max_age",
        "        return\n        max_age",
        "tests/test_delivery.py::test_memory_stays_bounded_under_a_100000_event_backlog[False]",
    ),
    (
        "new batches overtake the spool",
        "posthog_otel/_delivery/spool_access.py",
        "            if not self.first and self.spool.pending():\n                self.first = True",
        "            pass",
        "tests/test_spool.py::test_a_script_that_exits_while_posthog_is_down_loses_nothing",
    ),
    (
        "exit waits for the answer",
        "posthog_otel/_delivery/exit.py",
        "EXIT_STALL = 1.0",
        "EXIT_STALL = 1000.0",
        "tests/test_processes.py::test_a_script_exits_while_posthog_never_answers_and_the_next_run_delivers",
    ),
    (
        "no refusal after shutdown",
        "posthog_otel/_emitter.py",
        '            self._exporters, self._refusal = 0, "after_shutdown"\n            self._update()\n            self._closed_from = -1',
        "            self._exporters = 0",
        "tests/test_delivery.py::test_operations_after_shutdown_are_refused_and_counted",
    ),
    (
        "undeletable delivered claim forgotten",
        "posthog_otel/_delivery/spool.py",
        "                self._undeleted.add(name)  # removed at a later scan, never sent again",
        "                pass",
        "tests/test_spool.py::test_a_read_only_remount_mid_run_falls_back_to_memory",
    ),
    (
        "filesystem errors escape",
        "posthog_otel/_delivery/spool_access.py",
        '        except OSError as error:\n            self.failed(error, time.monotonic())\n            return False\n        self._stats.add("spooled", batch.count)',
        '        except ZeroDivisionError as error:\n            self.failed(error, time.monotonic())\n            return False\n        self._stats.add("spooled", batch.count)',
        "tests/test_spool.py::test_a_full_disk_falls_back_to_memory",
    ),
    (
        "hostile entries block delivery",
        "posthog_otel/_delivery/spool.py",
        "            self._active.discard(claimed)\n            quarantine(self.directory, claimed, str(why))\n            return _SKIPPED",
        "            self._active.discard(claimed)\n            self._files.rename(claimed, found.entry)\n            return None",
        "tests/test_spool.py -k unreadable_entry",
    ),
    (
        "one attempt only, no retries",
        "posthog_otel/_delivery/schedule.py",
        "        if not self._spool.on and (step is Step.UNAUTHORIZED or shipment.attempts >= self.policy.max_attempts):",
        "        if step is Step.UNAUTHORIZED or shipment.attempts >= 1:",
        "tests/test_load.py::test_configure_loses_nothing[flaky-30pct-503]",
    ),
    (
        "seq taken before the limits check",
        "posthog_otel/_emitter.py",
        "            attributes[schema.SEQUENCE] = 0\n            limits.check(attributes)\n        number = next(self.sequence)",
        "            attributes[schema.SEQUENCE] = next(self.sequence)\n            limits.check(attributes)\n        number = next(self.sequence)",
        "tests/test_limits.py",
    ),
    (
        "text rule off",
        "posthog_otel/_text.py",
        "    return text.isascii() or _SURROGATE.search(text) is None",
        "    return True",
        "tests/test_bad_input.py::test_ids_differing_only_in_surrogates_are_refused_never_merged tests/test_properties.py::test_values_that_cannot_be_sent_are_dropped_alone_and_counted tests/test_context.py",
    ),
    (
        "encoding replaces",
        "posthog_otel/_delivery/encoding.py",
        "        return dumps(event)\n",
        '        return _ENCODER.encode(event).encode("utf-8", "replace")\n',
        "tests/test_bad_input.py::test_handwritten_records_with_surrogates_lose_the_value_not_the_batch",
    ),
    (
        "encoding fast path replaces",
        "posthog_otel/_delivery/encoding.py",
        "        whole = dumps(list(events))\n",
        '        whole = _ENCODER.encode(list(events)).encode("utf-8", "replace")\n',
        "tests/test_bad_input.py::test_handwritten_records_with_surrogates_lose_the_value_not_the_batch",
    ),
    (
        "limits unchecked",
        "posthog_otel/_emitter.py",
        "            limits.check(attributes)",
        "            pass",
        "tests/test_limits.py",
    ),
    (
        "limits: 1.39 source fixed at bind",
        "posthog_otel/_limits.py",
        "        if self._fixed is not None:\n            return self._fixed",
        "        if self._by_env:\n            return next(iter(self._by_env.values()))",
        "tests/test_limits.py",
    ),
    (
        "uuid7 clock not clamped",
        "posthog_otel/_envelope.py",
        "    ms = min(max(time_ns // 1_000_000, 0), _MS_MAX)",
        "    ms = time_ns // 1_000_000",
        "tests/test_emit.py::test_any_datetime_arrives_as_given_under_the_returned_uuid",
    ),
    (
        "no posthog.timestamp",
        "posthog_otel/_envelope.py",
        "    return time_ns, (None if 0 < time_ns < _RECORD_TIME_MAX else iso)",
        "    return time_ns, None",
        "tests/test_emit.py::test_any_datetime_arrives_as_given_under_the_returned_uuid tests/test_emit.py::test_records_before_1970_stay_encodable_by_otlp",
    ),
    (
        "uuid as given",
        "posthog_otel/_envelope.py",
        "        return str(_uuid.UUID(as_text(value)))",
        "        _uuid.UUID(as_text(value)); return as_text(value)",
        "tests/test_emit.py::test_a_given_uuid_is_returned_and_sent_in_canonical_form",
    ),
    (
        "mapping uuid regex only",
        "posthog_otel/_mapping.py",
        "        return str(_uuid.UUID(value))",
        "        return None",
        "tests/test_mapping.py",
    ),
    (
        "mapping ignores posthog.timestamp",
        "posthog_otel/_mapping.py",
        "    if text is None:\n        return iso_timestamp",
        "    if True:\n        return iso_timestamp",
        "tests/test_mapping.py tests/test_emit.py::test_any_datetime_arrives_as_given_under_the_returned_uuid",
    ),
    (
        "mapping ids unchecked",
        "posthog_otel/_mapping.py",
        "        return as_text(value)\n    except Unusable",
        "        return str(value)\n    except Unusable",
        "tests/test_mapping.py tests/test_bad_input.py::test_handwritten_records_with_surrogates_lose_the_value_not_the_batch",
    ),
    (
        "warn key per reason only",
        "posthog_otel/_guard.py",
        '        "drop:%s:%s" % (call, drop.reason),',
        '        "drop:%s" % drop.reason,',
        "tests/test_emit.py::test_warnings_are_rate_limited_per_call_not_only_per_reason",
    ),
    (
        "property warn key per reason only",
        "posthog_otel/_properties.py",
        '        warn_limited(\n            "property:%s:%s" % (what, why),',
        '        warn_limited(\n            "property:%s" % why,',
        "tests/test_emit.py::test_property_warnings_are_said_per_call",
    ),
    (
        "generic capture message",
        "posthog_otel/_emit.py",
        '            "invalid_event", "the event name must be a string, not a %s (%s)", type(event).__name__, describe(event)\n        )',
        '            "no_event", "needs an event name"\n        )',
        "tests/test_emit.py::test_capture_says_what_is_actually_wrong",
    ),
    (
        "drop not counted",
        "posthog_otel/_guard.py",
        "    count_drop(drop.reason, counter=counter)\n",
        "",
        "tests/test_bad_input.py::test_every_call_in_any_context_never_raises_and_accounts_for_itself",
    ),
    (
        "tags win over properties",
        "posthog_otel/_emit.py",
        "            properties = {**tags, **properties}",
        "            properties = {**properties, **tags}",
        "tests/test_bad_input.py::test_every_call_in_any_context_never_raises_and_accounts_for_itself",
    ),
    (
        "internal errors swallowed in tests",
        "posthog_otel/_guard.py",
        "    if _state.debug_raises or _state.raise_internal_errors:\n        raise\n",
        "",
        "tests/test_emit.py::test_internal_errors_reraise_under_the_test_suite",
    ),
    (
        "refused context id falls back to parent",
        "posthog_otel/_context.py",
        '        return RefusedId("%s %s" % (describe(value), problem))',
        "        return None",
        "tests/test_context.py tests/test_bad_input.py::test_every_call_in_any_context_never_raises_and_accounts_for_itself",
    ),
    (
        "refused session falls back to parent",
        "posthog_otel/_context.py",
        "        if scope.session_id:\n            return scope.session_id if isinstance(scope.session_id, str) else None",
        "        if scope.session_id and isinstance(scope.session_id, str):\n            return scope.session_id",
        "tests/test_context.py",
    ),
    (
        "fresh= read with bool()",
        "posthog_otel/_context.py",
        "    return enter_scope(_is_fresh(fresh))",
        "    return enter_scope(bool(fresh))",
        "tests/test_context.py",
    ),
    (
        "tag keys raw",
        "posthog_otel/_context.py",
        "    scope.tags[name] = value",
        "    scope.tags[key] = value",
        "tests/test_context.py",
    ),
    (
        "identify_context str()",
        "posthog_otel/_context.py",
        '    scope.distinct_id = _scope_id(\n        "identify_context", "distinct id", distinct_id, "operations in this context that need a person are dropped"\n    )',
        "    scope.distinct_id = None if distinct_id is None else str(distinct_id)",
        "tests/test_context.py",
    ),
    (
        "big ints kept",
        "posthog_otel/_properties.py",
        "        return value if _INT_MIN <= value <= _INT_MAX else _big_int(value, what, name)",
        "        return value",
        "tests/test_bad_input.py::test_ints_past_64_bits_become_floats_and_past_floats_are_dropped tests/test_properties.py",
    ),
    (
        "fast path ignores surrogates",
        "posthog_otel/_properties.py",
        "        if kind is str:\n            if not (value.isascii() or is_sendable(value)):\n                return False",
        "        if kind is str:\n            pass",
        "tests/test_properties.py tests/test_bad_input.py::test_undecodable_bytes_and_their_surrogateescape_text_are_treated_alike",
    ),
    (
        "map items read unguarded",
        "posthog_otel/_properties.py",
        "    try:\n        return list(mapping.items())\n    except Exception as error:",
        "    if True:\n        return list(mapping.items())\n    if True:",
        "tests/test_properties.py tests/test_bad_input.py::test_maps_and_values_that_fail_when_read_are_dropped_alone",
    ),
    # performance work, review fixes, and the local server's accept loop
    (
        "exit looks again only from now",
        "posthog_otel/_delivery/exit.py",
        "            times.append(finish.stepped + 0.02)",
        "            times.append(time.monotonic() + 0.02)",
        "tests/test_schedule.py::test_exit_looks_again_20_ms_after_its_last_look_however_often_the_dispatcher_wakes",
    ),
    (
        "no SIGTERM watcher",
        "posthog_otel/_sigterm.py",
        '    global _pipe\n    if not hasattr(signal, "pthread_kill")',
        '    global _pipe\n    if True:\n        return\n    if not hasattr(signal, "pthread_kill")',
        "tests/test_processes.py::test_a_sigterm_python_noted_while_the_main_thread_waits_in_c_still_ends_the_process",
    ),
    (
        "a forked child keeps its parent's wake-up pipe",
        "posthog_otel/_sigterm.py",
        "\n_state.at_fork(_after_fork_in_child)\n",
        "\n",
        "tests/test_processes.py::test_a_forked_childs_sigterm_is_its_own_not_its_parents",
    ),
    (
        "SIGTERM persists on the interrupted main thread",
        "posthog_otel/_sigterm.py",
        "    persisting = None if exiting else _Persisting.start(SIGTERM_BUDGET)",
        "    persisting = None if exiting else (persist_all(SIGTERM_BUDGET, stop=False) or _Persisting.start(0))",
        "tests/test_processes.py::test_a_sigterm_while_the_main_thread_holds_what_delivering_needs_does_not_deadlock",
    ),
    (
        "the watcher resends after the handler has run",
        "posthog_otel/_sigterm.py",
        "            if _runs != _seen or not handler_installed():",
        "            if _running or not handler_installed():",
        "tests/test_processes.py::test_pid_1_survives_its_own_sigterm_with_the_queue_delivered",
    ),
    (
        "the watcher ends pid 1",
        "posthog_otel/_sigterm.py",
        "    if pid_1:\n        return\n    logger.warning(",
        "    logger.warning(",
        "tests/test_processes.py::test_pid_1_whose_main_thread_never_takes_sigterm_is_not_ended",
    ),
    (
        "the watcher only ever resends",
        "posthog_otel/_sigterm.py",
        "            if time.monotonic() >= deadline:\n                break\n            try:",
        "            if False:\n                break\n            try:",
        "tests/test_processes.py::test_a_main_thread_that_never_takes_sigterm_is_ended_after_the_grace_with_its_queue_delivered",
    ),
    (
        "a nested handler run marks the running one finished",
        "posthog_otel/_sigterm.py",
        "        if mine:  # a nested run that returned at once leaves the running one marked",
        "        if True:",
        "tests/test_processes.py::test_a_nested_run_of_the_handler_leaves_the_running_one_marked_as_running",
    ),
    (
        "a Ctrl-C cancels the SIGTERM",
        "posthog_otel/_sigterm.py",
        "        done, interrupted = False, error\n",
        "        done, interrupted = True, error\n",
        "tests/test_processes.py::test_a_ctrl_c_while_sigterm_is_handled_neither_cancels_it_nor_loses_the_queue",
    ),
    (
        "a forked child keeps a wake-up on a closed descriptor",
        "posthog_otel/_sigterm.py",
        "        if current != inherited[2]:  # the application's by now: leave it\n            signal.set_wakeup_fd(current)\n",
        "        if current != inherited[2]:  # the application's by now: leave it\n            signal.set_wakeup_fd(current)\n        elif not handler_installed():\n            signal.set_wakeup_fd(current)\n",
        "tests/test_processes.py::test_a_forked_child_whose_sigterm_is_not_ours_keeps_no_wake_up_on_a_closed_descriptor",
    ),
    (
        "local server with Nagle's delay",
        "posthog_otel/_local/serving.py",
        "            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n",
        "",
        "tests/test_local_server.py::test_answers_on_a_kept_alive_connection_leave_without_waiting_for_the_clients_ack",
    ),
    (
        "exit ignores Retry-After",
        "posthog_otel/_delivery/exit.py",
        "        if now < schedule.asked_to_wait_until and self._spool.usable(now):",
        "        if False:",
        "tests/test_delivery.py::test_shutdown_during_a_long_backoff_spools_and_returns",
    ),
    (
        "exit obeys our own backoff",
        "posthog_otel/_delivery/schedule.py",
        '            if verdict.retry_after:  # PostHog\'s own word, not our backoff: 0 means "now"\n'
        "                self.asked_to_wait_until = now + min(verdict.retry_after, self.policy.retry_after_cap)",
        "            if verdict.retry_after is not None:\n                self.asked_to_wait_until = now + wait",
        "tests/test_delivery.py::test_exit_tries_once_more_at_once_unless_posthog_said_to_wait",
    ),
    (
        "str-subclass keys kept",
        "posthog_otel/_properties.py",
        "    if not _STR_KEYS.issuperset(map(type, properties)):",
        "    if False:",
        "tests/test_properties.py::test_keys_that_are_str_subclasses_become_plain_text",
    ),
    (
        "timestamp cache starts at second -1",
        "posthog_otel/_mapping.py",
        '_last_second: Tuple[Optional[int], str] = (None, "")',
        '_last_second: Tuple[Optional[int], str] = (-1, "")',
        "tests/test_mapping.py::test_a_first_time_in_the_second_before_the_epoch",
    ),
    (
        "orjson refusals not sent",
        "posthog_otel/_delivery/encoding.py",
        "    except TypeError:  # orjson.JSONEncodeError: surrogates, ints past 64 bits, non-text keys, other types\n"
        "        return _stdlib_dumps(value)",
        '    except TypeError:\n        return b"null"',
        "tests/test_encoding.py",
    ),
    (
        "enums scrubbed unlike orjson",
        "posthog_otel/_delivery/encoding.py",
        "    if isinstance(value, enum.Enum):",
        "    if False:",
        "tests/test_encoding.py",
    ),
    (
        "evicted connection dispatched",
        "posthog_otel/_local/serving.py",
        "            elif key.data in self._idle or key.data in self._heads:  # not evicted earlier in this batch",
        "            else:",
        "tests/test_local_server.py::test_a_connection_evicted_while_it_was_ready_is_not_served",
    ),
    (
        "gateway trusts proxied loopback",
        "posthog_otel/gateway/_projects.py",
        "        elif forwarded:",
        "        elif False:",
        "tests/test_gateway.py::test_without_an_allow_list_a_request_a_local_proxy_relays_is_refused",
    ),
    (
        "deep OTLP/JSON is an internal error",
        "posthog_otel/gateway/_otlp.py",
        "    except RecursionError:  # nested deeper",
        "    except ZeroDivisionError:  # nested deeper",
        "tests/test_gateway_otlp.py::test_json_nested_past_the_stack_is_malformed_not_an_internal_error",
    ),
    # --- feature flags: the evaluator, against PostHog's SDK as the oracle
    (
        "flag bucket salt ignored",
        "posthog_otel/_flags/buckets.py",
        '    text = f"{key}{separator}{bucketing_id}{salt}"',
        '    text = f"{key}{separator}{bucketing_id}"',
        "tests/test_flags_oracle.py",
    ),
    (
        "is_not answers as exact",
        "posthog_otel/_flags/properties.py",
        '        return found if self.operator == "exact" else not found',
        "        return found",
        "tests/test_flags_oracle.py::test_every_operator_matches_like_posthogs",
    ),
    (
        "every variant the first",
        "posthog_otel/_flags/conditions.py",
        "        if low <= share < high:",
        "        if low <= share:",
        "tests/test_flags_oracle.py",
    ),
    (
        "rollout inverted",
        "posthog_otel/_flags/conditions.py",
        "        outside = share > condition.threshold",
        "        outside = share < condition.threshold",
        "tests/test_flags_oracle.py",
    ),
    (
        "caret of 0.0.x too wide",
        "posthog_otel/_flags/semver.py",
        "        upper = (0, 0, patch + 1)",
        "        upper = (0, 1, 0)",
        "tests/test_flags_oracle.py::test_tricky_operator_cases_are_posthogs",
    ),
    (
        "304 forgets the etag",
        "posthog_otel/_flags/poller.py",
        '            self.etag = answer.headers.get("ETag") or self.etag',
        "            self.etag = None",
        "tests/test_flags_polling.py::test_etag_is_sent_back_and_304_keeps_what_is_loaded",
    ),
    (
        "flags 502 not asked again",
        "posthog_otel/_flags/remote.py",
        "RETRY_STATUSES = frozenset({502, 503, 504})",
        "RETRY_STATUSES = frozenset({503})",
        "tests/test_flags.py::test_a_gateway_failure_is_asked_again_and_its_answer_returned",
    ),
    (
        "flags bypass the transport",
        "posthog_otel/_flags/service.py",
        "        self.http = FlagsHttp(transport)",
        "        self.http = FlagsHttp(None)",
        "tests/test_flags_transport.py",
    ),
    # --- the retry policy, the protocols and the head of the line (_retry, _protocol, _client)
    (
        "5xx not retried",
        "posthog_otel/_delivery/retry.py",
        "        return status in self.retryable_statuses or 500 <= status <= 599",
        "        return status in self.retryable_statuses",
        "tests/test_retry.py::test_which_answers_are_retried",
    ),
    (
        "backoff without its cap",
        "posthog_otel/_delivery/retry.py",
        "        delay: float = min(self.backoff_base * 2 ** min(failures - 1, 62), self.backoff_max)  # int ** int: Any to mypy",
        "        delay: float = self.backoff_base * 2 ** min(failures - 1, 62)",
        "tests/test_retry.py::test_backoff_doubles_from_the_base_up_to_the_cap",
    ),
    (
        "Retry-After uncapped",
        "posthog_otel/_delivery/retry.py",
        "            wait = max(wait, min(retry_after, self.retry_after_cap))",
        "            wait = max(wait, retry_after)",
        "tests/test_retry.py::test_retry_after_is_a_floor_and_is_capped",
    ),
    (
        "V1 request id per attempt",
        "posthog_otel/_delivery/protocol.py",
        '            "PostHog-Request-Id": self._request_id,',
        '            "PostHog-Request-Id": str(_uuid.uuid4()),',
        "tests/test_capture_v1.py::test_v1_request_headers_and_envelope",
    ),
    (
        "V1 drop answered as ok",
        "posthog_otel/_delivery/protocol.py",
        '            elif verdict == "drop":',
        "            elif False:",
        "tests/test_capture_v1.py::test_only_events_answered_retry_are_resent_and_drops_are_counted",
    ),
    (
        "V1 $set left at the top",
        "posthog_otel/_delivery/protocol.py",
        '    for key in ("$set", "$set_once"):\n        value = event.get(key)',
        "    for key in ():\n        value = event.get(key)",
        "tests/test_capture_v1.py::test_v1_request_headers_and_envelope",
    ),
    (
        "rejected events not counted",
        "posthog_otel/_delivery/client.py",
        '            count_drop("rejected", exchange.pending)\n',
        "",
        "tests/test_delivery.py::test_other_client_errors_are_not_retried",
    ),
    (
        "413 drops instead of halving",
        "posthog_otel/_delivery/client.py",
        "            self._halve(exchange.remaining())",
        "            pass",
        "tests/test_delivery.py::test_413_splits_the_batch_and_sends_the_halves_in_order",
    ),
    (
        "a raising transport kills the sender",
        "posthog_otel/_delivery/client.py",
        "        except Exception as error:  # a transport of the application's that raises anything else",
        "        except ZeroDivisionError as error:",
        "tests/test_core_defects.py::test_a_transport_raising_anything_is_no_answer_and_one_dispatcher_thread_goes_on",
    ),
    # --- PostHog's options and hooks (issue 16)
    (
        "before_send not applied",
        "posthog_otel/_delivery/handoff.py",
        "        events = self._hooks.apply(events)",
        "        pass",
        "tests/test_posthog_compat.py::test_before_send_scrubs_and_drops_as_posthogs_does",
    ),
    (
        "disabled ignored",
        "posthog_otel/_emitter.py",
        '        self._switch = "disabled" if self.disabled else (None if self.send else "not_sent")',
        "        self._switch = None",
        "tests/test_posthog_compat.py::test_disabled_sends_nothing_and_returns_none_as_posthogs",
    ),
    (
        "test fixture does not redirect",
        "posthog_otel/testing.py",
        "        _config.REDIRECT = {",
        "        _unused = {",
        "tests/test_posthog_compat.py::test_the_test_fixture_wins_over_the_applications_configure",
    ),
    (
        "keyword mistakes blamed on the library",
        "posthog_otel/_guard.py",
        "    elif isinstance(error, TypeError) and _binding_failed(error):",
        "    elif False:",
        "tests/test_posthog_compat.py::test_two_different_mistakes_in_one_function_are_both_said",
    ),
    (
        "host without a scheme goes elsewhere",
        "posthog_otel/_config.py",
        '        value = ("http://" if _is_loopback_name(name) else "https://") + value',
        "        pass",
        "tests/test_config.py::test_a_host_without_a_scheme_keeps_its_region_everywhere",
    ),
    (
        "fast property walk keeps NaN",
        "posthog_otel/_properties.py",
        "            out[name] = value if _isfinite(value) else None",
        "            out[name] = value",
        "tests/test_properties.py::test_the_fast_walk_and_the_full_one_give_the_same_properties_and_the_same_drops",
    ),
]

#: A handful that run in .ci/run (``--quick``): one or two per layer, a couple of minutes in all.
QUICK = (
    "fast property walk keeps NaN",
    "keyword mistakes blamed on the library",  # operations
    "flag bucket salt ignored",
    "304 forgets the etag",
    "flags bypass the transport",  # flags
    "5xx not retried",
    "V1 drop answered as ok",
    "a raising transport kills the sender",
    "backoff never resets",
    "SDK queue drops not counted",
)  # delivery


def main() -> None:
    only = sys.argv[1:]
    if only == ["--quick"]:
        chosen = [m for m in MUTATIONS if m[0] in QUICK]
    else:
        chosen = [m for m in MUTATIONS if not only or any(o in m[0] for o in only)]
    missed = 0
    with tempfile.TemporaryDirectory(prefix="posthog-otel-mutate-") as work:
        copy = pathlib.Path(work) / "tree"
        files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        for name in filter(None, files.decode().split("\0")):
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
        for name, path, old, new, tests in chosen:
            file = copy / path
            original = file.read_text()
            assert original.count(old) == 1, "%s: the code to break is not there (once)" % name
            file.write_text(original.replace(old, new))
            oldest = ROOT / ".venv-oldest/bin/python"
            python = oldest if "1.39" in name and oldest.exists() else ROOT / ".venv/bin/python"
            try:
                done = subprocess.run(
                    [str(python), "-m", "pytest", "-q", "-x", "-n", "0", "-p", "no:cacheprovider", *tests.split()],
                    cwd=copy,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                verdict = "CAUGHT" if done.returncode else "MISSED"
            except subprocess.TimeoutExpired:
                verdict = "CAUGHT (hung)"
            finally:
                file.write_text(original)
            missed += verdict == "MISSED"
            print("%-14s %-42s %s" % (verdict, name, tests), flush=True)
    print("%d of %d caught" % (len(chosen) - missed, len(chosen)))
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()

// A run's live progress from its server-sent events: Dagster's events as they come (each step that
// succeeds moves the bar), then the `end` event with the run's final state.
import { useEffect, useState } from "react";
import { P, followRun, get, type RunEvent } from "../api";

interface RunState {
  status: string;
  done: boolean;
  steps_done: number;
  steps_total: number | null;
  error: string | null;
}

export function RunProgress({ project, runId, onEnd }: { project: string; runId: string; onEnd?: (last: RunEvent | null) => void }) {
  const [last, setLast] = useState<RunEvent | null>(null);
  const [stepsDone, setStepsDone] = useState(0);
  const [state, setState] = useState<RunState | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [ended, setEnded] = useState(false);
  useEffect(() => {
    const ctl = new AbortController();
    let final: RunEvent | null = null;
    get<RunState>(`${P(project)}/runs/${encodeURIComponent(runId)}`, ctl.signal).then(setState, () => undefined);
    followRun(project, runId, (e) => {
      if (e.event === "end") {
        final = e;
        setState(e as unknown as RunState);
        return;
      }
      if (e.type === "STEP_SUCCESS") setStepsDone((n) => n + 1);
      setLast(e);
    }, ctl.signal)
      .then(() => {
        setEnded(true);
        onEnd?.(final);
      })
      .catch((e: Error) => {
        if (!ctl.signal.aborted) setError(e.message);
      });
    return () => ctl.abort();
    // onEnd is the caller's callback of the moment; the stream is the run's
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [project, runId]);
  const total = state?.steps_total ?? null;
  const done = ended ? state?.steps_done ?? stepsDone : Math.max(stepsDone, state?.steps_done ?? 0);
  const fraction = ended ? 1 : total ? done / total : null;
  const failed = state?.status === "FAILURE" || state?.status === "FAILED_TO_START" || !!state?.error;
  const text = error
    ? `error: ${error}`
    : ended
      ? `${state?.status ?? "ended"}${state?.error ? `: ${state.error}` : ""}`
      : `${total ? `step ${done}/${total}` : "running"}${last ? ` · ${last.step ? `${last.step}: ` : ""}${last.message || last.type}` : ""}`;
  return (
    <div className={`progress${failed ? " failed" : ""}`} data-run={runId} data-ended={ended} data-status={state?.status ?? ""}>
      <div className="bar">
        <div style={{ width: fraction === null ? "8%" : `${Math.round(Math.min(1, fraction) * 100)}%` }}
          className={fraction === null ? "indeterminate" : undefined} />
      </div>
      <span>run {runId.slice(0, 8)}: {text}</span>
    </div>
  );
}

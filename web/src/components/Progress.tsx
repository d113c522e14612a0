// A run's live progress, from its server-sent events, until the `end` event.
import { useEffect, useState } from "react";
import { followRun, type RunEvent } from "../api";

export function RunProgress({ project, runId, onEnd }: { project: string; runId: string; onEnd?: (last: RunEvent | null) => void }) {
  const [events, setEvents] = useState<RunEvent[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [ended, setEnded] = useState(false);
  useEffect(() => {
    const ctl = new AbortController();
    let last: RunEvent | null = null;
    followRun(project, runId, (e) => {
      last = e;
      setEvents((prev) => [...prev.slice(-200), e]);
    }, ctl.signal)
      .then(() => {
        setEnded(true);
        onEnd?.(last);
      })
      .catch((e: Error) => {
        if (!ctl.signal.aborted) setError(e.message);
      });
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [project, runId]);
  const withFraction = [...events].reverse().find((e) => typeof e.progress === "number" || (typeof e.done === "number" && typeof e.total === "number"));
  const fraction = withFraction
    ? typeof withFraction.progress === "number"
      ? withFraction.progress
      : (withFraction.done as number) / Math.max(1, withFraction.total as number)
    : ended ? 1 : null;
  const last = events[events.length - 1];
  return (
    <div className="progress" data-run={runId} data-ended={ended}>
      <div className="bar">
        <div style={{ width: fraction === null ? "8%" : `${Math.round(Math.min(1, fraction) * 100)}%` }}
          className={fraction === null && !ended ? "indeterminate" : undefined} />
      </div>
      <span>
        run {runId}: {error ? `error: ${error}` : ended ? `ended${last?.status ? ` (${last.status})` : ""}` : last?.message ?? last?.event ?? "starting…"}
      </span>
    </div>
  );
}

// The API client: the access token lives in memory only, the refresh token in sessionStorage (so a
// reload keeps the login for this tab, and closing the tab ends it). A 401 refreshes once and
// retries; a failed refresh sends the user to the login page.

export interface Problem {
  title?: string;
  status?: number;
  detail?: string;
  column?: number;
  query?: string;
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public problem: Problem,
  ) {
    super(problem.detail || problem.title || `HTTP ${status}`);
  }
}

const REFRESH_KEY = "dsgen.refresh";
let access: string | null = null;
let refreshing: Promise<boolean> | null = null;
const listeners = new Set<() => void>();

export function onLogout(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function isLoggedIn(): boolean {
  return access !== null || sessionStorage.getItem(REFRESH_KEY) !== null;
}

interface Tokens {
  access_token: string;
  refresh_token: string;
}

function keep(t: Tokens): void {
  access = t.access_token;
  sessionStorage.setItem(REFRESH_KEY, t.refresh_token);
}

function forget(): void {
  access = null;
  sessionStorage.removeItem(REFRESH_KEY);
  listeners.forEach((fn) => fn());
}

async function problemOf(r: Response): Promise<ApiError> {
  let body: Problem = { status: r.status, title: r.statusText };
  try {
    body = await r.json();
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(r.status, body);
}

export async function login(email: string, password: string): Promise<void> {
  const r = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  if (!r.ok) throw await problemOf(r);
  keep(await r.json());
}

function refresh(): Promise<boolean> {
  // one refresh at a time: a rotated refresh token used twice would end the login (reuse detection)
  refreshing ??= (async () => {
    const token = sessionStorage.getItem(REFRESH_KEY);
    if (!token) return false;
    const r = await fetch("/api/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: token }),
    });
    if (!r.ok) return false;
    keep(await r.json());
    return true;
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

export async function logout(): Promise<void> {
  const token = sessionStorage.getItem(REFRESH_KEY);
  try {
    await fetch("/api/auth/logout", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(access ? { Authorization: `Bearer ${access}` } : {}) },
      body: JSON.stringify({ refresh_token: token }),
    });
  } finally {
    forget();
  }
}

/** A request with the login's token; a 401 refreshes the token and retries once. */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  if (access === null && !(await refresh())) {
    forget();
    throw new ApiError(401, { title: "Unauthorized", detail: "log in" });
  }
  const send = () =>
    fetch(path, { ...init, headers: { ...(init.headers as Record<string, string>), Authorization: `Bearer ${access}` } });
  let r = await send();
  if (r.status === 401) {
    if (!(await refresh())) {
      forget();
      throw await problemOf(r);
    }
    r = await send();
  }
  if (!r.ok) throw await problemOf(r);
  return r;
}

export async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
  return (await request(path, { signal })).json() as Promise<T>;
}

export async function send<T>(method: string, path: string, body?: unknown): Promise<T> {
  const r = await request(path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (r.status === 204 ? null : await r.json()) as T;
}

export const post = <T>(path: string, body?: unknown) => send<T>("POST", path, body);

export function qs(params: Record<string, string | number | boolean | null | undefined>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : "";
}

export const P = (project: string) => `/api/projects/${encodeURIComponent(project)}`;

export interface RunEvent {
  event?: string;
  type?: string;
  message?: string;
  progress?: number;
  done?: number;
  total?: number;
  status?: string;
  [k: string]: unknown;
}

/** A run's server-sent events, read with fetch (EventSource cannot send the Authorization header). */
export async function followRun(
  project: string,
  runId: string,
  onEvent: (e: RunEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  const r = await request(`${P(project)}/runs/${encodeURIComponent(runId)}/events`, {
    signal,
    headers: { Accept: "text/event-stream" },
  });
  const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let cut: number;
    while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut).replace(/^\r?\n\r?\n/, "");
      let name: string | undefined;
      const data: string[] = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (!data.length && !name) continue;
      let e: RunEvent;
      try {
        e = data.length ? JSON.parse(data.join("\n")) : {};
      } catch {
        e = { message: data.join("\n") };
      }
      if (name && !e.event) e.event = name;
      onEvent(e);
      if (e.event === "end" || e.type === "end") return;
    }
  }
}

/** Saves a response body (an export ZIP) as a file: a plain link could not send the token. */
export async function download(path: string, filename: string): Promise<void> {
  const r = await request(path);
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

import { useState } from "react";
import { login } from "../api";
import { navigate } from "../router";

export function Login() {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      await login(email, password);
      const back = new URLSearchParams(location.search).get("next");
      navigate(back && back.startsWith("/") && !back.startsWith("//") ? back : "/", true);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="login" onSubmit={(e) => { e.preventDefault(); void submit(); }}>
      <h1>dsgen</h1>
      <label>Email<input name="email" type="email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} required /></label>
      <label>Password<input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required /></label>
      {error && <p className="error" role="alert">{error}</p>}
      <button type="submit" disabled={busy}>Log in</button>
    </form>
  );
}

/** A copy of a typed array with room for `n` elements (the rest zero). */
export function grown<T extends Int32Array | Uint8Array>(a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}

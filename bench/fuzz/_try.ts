import { fuzzInProcess } from './in-process.js'

const r = await fuzzInProcess({ seed: 14, frames: 51400 })
for (const v of r.stateChanges) console.log(v.what.replace(/^input \S+ /, ''))

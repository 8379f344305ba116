"""Runs: the owners of the runs and trials tables' SQL, and the service functions.

The SQL owners are `repository` and `trials`; the service functions are in `submit`,
`cancel` and `progress`.
"""

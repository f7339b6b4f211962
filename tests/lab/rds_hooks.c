/*
 * Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
 *
 * dbre.rds lab: what RDS for PostgreSQL's patched server lets members of rds_superuser do with logical replication.
 *
 * Stock PostgreSQL 15 reserves CREATE/ALTER/DROP SUBSCRIPTION, CREATE PUBLICATION ... FOR ALL TABLES (and FOR
 * TABLES IN SCHEMA) to superusers. On RDS the master user (a member of rds_superuser, never a superuser) may run
 * them. This ProcessUtility_hook runs exactly those statements, for a member of rds_superuser, as the bootstrap
 * superuser (the lab's lab_admin) for the duration of the statement, and as the caller for everything else.
 * DROP PUBLICATION is included because the publications it creates so are owned by the bootstrap superuser.
 *
 * On RDS, membership of rds_replication is what lets a login open a replication connection once
 * rds.logical_replication=1. Stock PostgreSQL needs the REPLICATION attribute, which only a superuser can set; the
 * lab gives it to rds_replication's login members at each start (tests/lab/postgres.py) and, through this hook, at
 * once after a GRANT or CREATE ROLE that makes a login a member while wal_level is logical.
 *
 * Built by tests/lab/rds_hooks.py; loaded with shared_preload_libraries by tests/lab/postgres.py.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void _PG_init(void);

static ProcessUtility_hook_type previous_hook = NULL;

static bool
needs_rds_superuser_elevation(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_CreateSubscriptionStmt:
		case T_AlterSubscriptionStmt:
		case T_DropSubscriptionStmt:
			return true;
		case T_CreatePublicationStmt:
			{
				CreatePublicationStmt *pub = (CreatePublicationStmt *) stmt;
				ListCell   *cell;

				if (pub->for_all_tables)
					return true;
				foreach(cell, pub->pubobjects)
				{
					PublicationObjSpec *obj = (PublicationObjSpec *) lfirst(cell);

					if (obj->pubobjtype != PUBLICATIONOBJ_TABLE)
						return true;	/* TABLES IN SCHEMA: superuser only in PostgreSQL 15 */
				}
				return false;
			}
		case T_DropStmt:
			return ((DropStmt *) stmt)->removeType == OBJECT_PUBLICATION;
		default:
			return false;
	}
}

static bool
member_of_rds_superuser(void)
{
	Oid			role = get_role_oid("rds_superuser", true);

	return OidIsValid(role) && has_privs_of_role(GetUserId(), role);
}

/* The statements tests/lab/postgres.py runs at each start (SYNC_REPLICATION_SQL), for logins only gaining it. */
#define GRANT_REPLICATION_SQL \
	"SELECT format('ALTER ROLE %I REPLICATION', r.rolname) FROM pg_roles r " \
	"WHERE r.rolcanlogin AND NOT r.rolsuper AND NOT r.rolreplication " \
	"AND to_regrole('rds_replication') IS NOT NULL AND pg_has_role(r.oid, to_regrole('rds_replication'), 'USAGE')"

static bool
may_add_replication_members(Node *stmt)
{
	const char *wal_level = GetConfigOption("wal_level", false, false);

	if (wal_level == NULL || strcmp(wal_level, "logical") != 0)
		return false;
	return nodeTag(stmt) == T_GrantRoleStmt || nodeTag(stmt) == T_CreateRoleStmt;
}

static void
grant_replication_to_members(void)
{
	Oid			saved_user;
	int			saved_context;
	uint64		i;
	List	   *statements = NIL;
	ListCell   *cell;

	CommandCounterIncrement();
	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, saved_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "rds_hooks: SPI_connect failed");
		if (SPI_execute(GRANT_REPLICATION_SQL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "rds_hooks: reading rds_replication's members failed");
		for (i = 0; i < SPI_processed; i++)
			statements = lappend(statements, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		foreach(cell, statements)
		{
			if (SPI_execute((const char *) lfirst(cell), false, 0) != SPI_OK_UTILITY)
				elog(ERROR, "rds_hooks: %s failed", (const char *) lfirst(cell));
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_context);
	}
	PG_END_TRY();
}

static void
rds_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv,
					DestReceiver *dest, QueryCompletion *qc)
{
	Oid			saved_user;
	int			saved_context;
	bool		elevate;

	elevate = needs_rds_superuser_elevation(pstmt->utilityStmt) && !superuser() && member_of_rds_superuser();
	if (!elevate)
	{
		bool		members = may_add_replication_members(pstmt->utilityStmt);

		if (previous_hook)
			previous_hook(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		if (members)
			grant_replication_to_members();
		return;
	}
	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, saved_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		if (previous_hook)
			previous_hook(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_context);
	}
	PG_END_TRY();
}

void
_PG_init(void)
{
	previous_hook = ProcessUtility_hook;
	ProcessUtility_hook = rds_process_utility;
}

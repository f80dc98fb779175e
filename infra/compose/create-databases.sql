create database orders;
create database inventory;
create database payments;
create database shipping;
create database notifications;
create database registry;
create database views;
